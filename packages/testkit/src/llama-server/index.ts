export { buildLlamaServer, defaultLlamaServerCacheDir, llamaServerWithCpuVariant, planLlamaServerBuild, type LlamaServerBuildPlan, type LlamaServerBinary, type LlamaServerBuild, type LlamaServerBuildOptions } from "./build-llama-server.js";
export { startLlamaServer, type RunningLlamaServer, type StartLlamaServerOptions } from "./start-llama-server.js";
export { pickX86CpuVariant, parseCpuinfoFlags, runnableX86CpuVariant, X86_CPU_VARIANTS } from "./cpu-variant.js";
