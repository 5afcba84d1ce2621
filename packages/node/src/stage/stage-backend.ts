/** The runtimes a layer span can run on (`stage_backend`): one list, read by config.ts and by span-runtime.ts. */
export const STAGE_BACKENDS = ["auto", "wasm", "ggml-cpu", "vulkan", "cuda", "metal"] as const;
export type StageBackend = (typeof STAGE_BACKENDS)[number];

/** The ggml GPU backends, in the order `auto` tries them (CUDA before Vulkan: on NVIDIA both may initialise). */
export const GPU_STAGE_BACKENDS = ["cuda", "metal", "vulkan"] as const satisfies readonly StageBackend[];
export type GpuStageBackend = (typeof GPU_STAGE_BACKENDS)[number];

/** The runtime a span ends up on (never `auto`). */
export type SpanRuntimeName = Exclude<StageBackend, "auto">;

export function isGpuStageBackend(value: string): value is GpuStageBackend {
  return (GPU_STAGE_BACKENDS as readonly string[]).includes(value);
}
