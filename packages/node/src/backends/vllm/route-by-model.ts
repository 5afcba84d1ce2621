/**
 * vLLM serves one model per process, so a node maps several instances. Routing is a pure choice: the instance
 * configured for the requested model; an instance configured without a model takes any name only when it is the
 * only instance (one `VLLM_HOST` and nothing else).
 */
export interface VllmInstance {
  /** e.g. `http://127.0.0.1:8000`. */
  host: string;
  /** The name it serves (`--served-model-name`, or the Hugging Face id it was started with). */
  model?: string;
}

export function routeByModel<T extends VllmInstance>(instances: readonly T[], model: string): T | undefined {
  const exact = instances.find((i) => i.model === model);
  if (exact) return exact;
  if (instances.length === 1 && instances[0].model === undefined) return instances[0];
  return undefined;
}
