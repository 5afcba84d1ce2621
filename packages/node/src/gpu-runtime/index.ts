export * from "./detect-gpu.js";
export * from "./gpu-builds.js";
export * from "./gpu-runtime-record.js";
export * from "./install-gpu-runtime.js";
export { type GetLlama, type LlamaBuild, type LoadedLlama, gpuRuntimeState, loadLlama } from "./load-llama.js";
