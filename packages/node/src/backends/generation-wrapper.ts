import type { BackendAdapter } from "./adapter.js";

/**
 * `adapter` with its generation (`doGenerate`, `doStream`) replaced and everything else passed through, optional
 * methods only where the adapter has them (so what a wrapped backend can do is still read from what it defines).
 */
export function withGeneration(adapter: BackendAdapter, generation: Pick<BackendAdapter, "doGenerate" | "doStream">): BackendAdapter {
  const wrapped: BackendAdapter = {
    kind: adapter.kind,
    health: (signal) => adapter.health(signal),
    listModels: (signal) => adapter.listModels(signal),
    doGenerate: (request) => generation.doGenerate(request),
    doStream: (request) => generation.doStream(request),
  };
  if (adapter.score) wrapped.score = (request) => adapter.score!(request);
  if (adapter.embed) wrapped.embed = (request) => adapter.embed!(request);
  if (adapter.pull) wrapped.pull = (model, onProgress, signal) => adapter.pull!(model, onProgress, signal);
  if (adapter.remove) wrapped.remove = (model) => adapter.remove!(model);
  if (adapter.close) wrapped.close = () => adapter.close!();
  return wrapped;
}
