import type { BackendAdapter } from "../adapter.js";
import { collectStream } from "../adapter.js";

/**
 * The backend of a node that offers only layer spans of a sharded model (`--stage-model` without `--model` or a local
 * inference server): it serves no whole model, so the coordinator never routes a job to it, and one that arrives
 * anyway is refused by name.
 */
export function createStageOnlyBackend(): BackendAdapter {
  return {
    kind: "stage-only",
    async health() {
      return { ok: true };
    },
    async listModels() {
      return [];
    },
    async *doStream(request) {
      yield { type: "error", code: "model_not_found", message: `this node serves no whole model (it offers layer spans only); ${request.model} is not here` };
      yield { type: "finish", reason: "error" };
    },
    doGenerate(request) {
      return collectStream(this.doStream(request));
    },
  };
}
