export { openGguf, ggmlTypeName, GGML_TYPE, type GgufFile, type GgufTensorInfo, type GgufValue } from "./gguf-reader.js";
export { readLlamaConfig, type LlamaConfig } from "./llama-config.js";
export { readModelConfig } from "./model-info.js";
export { loadStage, Stage, type LoadStageOptions, type ForwardOptions, type TokenInput, type PositionInput } from "./stage.js";
export { Sampler, argmax, largestMagnitude, type SamplingOptions } from "./sampler.js";
export { createRunner, loadRunner, type StageRunner, type GenerateOptions } from "./runner.js";
export { f32ToF16Bits, roundToF16, F16_TO_F32 } from "./f16.js";
export { setStageThreads } from "./wasm-matvec.js";
export {
  loadSpan, probeGgmlCpu, resolveStageRuntime, describeGgml, describeGpu, isStageBackend, spanGpuMemoryOffer, WasmSpan, STAGE_BACKENDS, GPU_STAGE_BACKENDS,
  type Span, type StageBackend, type GpuStageBackend, type SpanRuntimeName, type LoadedSpan, type LoadSpanOptions, type StageRuntimeChoice, type GgmlProbe,
} from "./span-runtime.js";
export { probeGpuBackend, gpuMemoryOffer, explainGpuLoadError, type GpuBackend, type GpuDevice, type GpuProbeResult } from "./ggml/ggml-gpu.js";
export { loadGgmlStage, GgmlStage, type LoadGgmlStageOptions } from "./ggml/ggml-stage.js";
export { GgmlWorkerSpan, type LoadGgmlWorkerSpanOptions } from "./ggml/ggml-worker-span.js";
