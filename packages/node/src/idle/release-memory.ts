import type { BackendAdapter } from "../backends/adapter.js";

/**
 * Frees what the backend holds in memory for the served models (the owner is back): the embedded engine disposes
 * its model and context (`unload()`, reloaded on enlist), Ollama unloads each model with `keep_alive: 0`. Other
 * backends are servers the operator runs (vLLM, SGLang, llama-server, MAX): their memory is theirs to manage, so
 * nothing is done and the summary says so.
 */
export async function releaseModelMemory(backend: BackendAdapter, models: readonly string[]): Promise<string> {
  const b = backend as BackendAdapter & { unload?: (model?: string) => Promise<void>; load?: (model?: string) => Promise<void> };
  if (typeof b.unload !== "function") return `backend ${backend.kind} keeps its own memory`;
  if (backend.kind === "ollama") {
    for (const model of models) await b.unload(model);
    return `unloaded ${models.length} model(s) from Ollama (keep_alive 0)`;
  }
  await b.unload();
  return "model and context released";
}

/** Loads the model again before taking work (embedded: `load()`; Ollama loads on the first request). */
export async function reloadModel(backend: BackendAdapter): Promise<void> {
  const b = backend as BackendAdapter & { load?: (model?: string) => Promise<void> };
  if (backend.kind === "embedded" && typeof b.load === "function") await b.load();
}
