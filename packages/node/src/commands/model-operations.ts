import { type Hardware, TesseraError } from "@tessera/protocol";
import type { BackendAdapter, BackendModel, PullProgress } from "../backends/adapter.js";
import { backendIdFor } from "./inventory.js";
import { checkModelFit, describeMisfit, type ModelFit } from "./model-fit.js";
import { howToAddModel } from "./how-to-add-model.js";

/**
 * Installing and removing a model in the backend, shared by the daemon's command executor and `tessera model`.
 * Only backends with `pull`/`remove` (Ollama) install; for the others the operator installs with the backend's
 * own tools and lists the model in served_models.
 */
export interface InstallModelOptions {
  hardware: Pick<Hardware, "gpus" | "ram_mb">;
  onProgress?: (progress: PullProgress) => void;
  signal?: AbortSignal;
  /** Pull even when the model cannot fit (it is then installed but never advertised). */
  force?: boolean;
}

export interface InstallModelResult {
  /** The backend's id for it (`llama3.2` becomes `llama3.2:latest` in Ollama). */
  id: string;
  model: BackendModel;
  fit: ModelFit;
  backendModels: BackendModel[];
}

export async function installModel(backend: BackendAdapter, name: string, options: InstallModelOptions): Promise<InstallModelResult> {
  if (!backend.pull) {
    throw new TesseraError(
      "bad_request",
      `backend ${backend.kind} cannot install models: ${howToAddModel(backend.kind, name)}`,
    );
  }
  const before = checkModelFit(name, { hardware: options.hardware });
  if (!before.fits && !options.force) {
    throw new TesseraError("bad_request", `${describeMisfit(before)}; not installed (--force installs it anyway, but it is never advertised)`);
  }
  await backend.pull(name, options.onProgress ?? (() => {}), options.signal);
  const backendModels = await backend.listModels();
  const id = backendIdFor(name, backendModels);
  const model = id === undefined ? undefined : backendModels.find((m) => m.id === id);
  if (id === undefined || !model) throw new TesseraError("internal_error", `backend ${backend.kind} reported ${name} pulled but does not list it`);
  const fit = checkModelFit(id, { hardware: options.hardware, ...(model.sizeBytes !== undefined ? { sizeBytes: model.sizeBytes } : {}) });
  return { id, model, fit, backendModels };
}

export interface RemoveModelResult {
  id: string;
  backendModels: BackendModel[];
}

export async function removeModel(backend: BackendAdapter, name: string): Promise<RemoveModelResult> {
  if (!backend.remove) {
    throw new TesseraError("bad_request", `backend ${backend.kind} cannot remove models: remove ${name} with ${backend.kind}'s own tools`);
  }
  const id = backendIdFor(name, await backend.listModels());
  if (id === undefined) throw new TesseraError("model_not_found", `backend ${backend.kind} does not have ${name}`);
  await backend.remove(id);
  return { id, backendModels: await backend.listModels() };
}

/** Bytes per second between two progress samples; undefined until there are two with byte counts. */
export class TransferRate {
  private first: { at: number; bytes: number } | undefined;
  private last: { at: number; bytes: number } | undefined;

  sample(at: number, completedBytes: number | undefined): void {
    if (completedBytes === undefined) return;
    // A new layer starts its count from zero: restart the window.
    if (this.last && completedBytes < this.last.bytes) this.first = undefined;
    this.first ??= { at, bytes: completedBytes };
    this.last = { at, bytes: completedBytes };
  }

  bytesPerSecond(): number | undefined {
    if (!this.first || !this.last || this.last.at <= this.first.at) return undefined;
    return ((this.last.bytes - this.first.bytes) * 1000) / (this.last.at - this.first.at);
  }
}
