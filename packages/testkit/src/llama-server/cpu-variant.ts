/**
 * Which of ggml's x86 CPU backend variants node-llama-cpp's prebuilt binary loads on this machine, and the cmake
 * options that compile llama-server's CPU backend with exactly that variant's instruction sets.
 *
 * Why: node-llama-cpp's linux-x64 prebuilt is built with GGML_NATIVE=OFF, GGML_CPU_ALL_VARIANTS=ON,
 * GGML_BACKEND_DL=ON, GGML_OPENMP=OFF (its compileLLamaCpp.js in CI mode) and at run time loads the supported variant
 * with the highest score (ggml-cpu/arch/x86/cpu-feats.cpp: the most features). Kernels differ between variants
 * (AVX2 vs AVX512 dot products sum in different orders), so a llama-server built with `-march=native` or with another
 * variant would round differently. Building all 13 variants costs ~6x the CPU backend's compile time on two cores;
 * the one variant's flags give the same compiler flags and defines (checked in cmake's "Adding CPU backend variant"
 * line). The table mirrors `ggml_add_cpu_backend_variant` in llama.cpp's ggml/src/CMakeLists.txt (node-llama-cpp
 * 3.22.1's bundle, release v0.5.0).
 */
export type X86Feature =
  | "SSE42" | "AVX" | "F16C" | "FMA" | "AVX2" | "BMI2" | "AVX_VNNI"
  | "AVX512" | "AVX512_VBMI" | "AVX512_VNNI" | "AVX512_BF16" | "AMX_TILE" | "AMX_INT8";

export const X86_CPU_VARIANTS: ReadonlyArray<{ name: string; features: readonly X86Feature[] }> = [
  { name: "x64", features: [] },
  { name: "sse42", features: ["SSE42"] },
  { name: "sandybridge", features: ["SSE42", "AVX"] },
  { name: "ivybridge", features: ["SSE42", "AVX", "F16C"] },
  { name: "piledriver", features: ["SSE42", "AVX", "F16C", "FMA"] },
  { name: "haswell", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"] },
  { name: "skylakex", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512"] },
  { name: "cannonlake", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI"] },
  { name: "cascadelake", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI"] },
  { name: "icelake", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI"] },
  { name: "cooperlake", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VNNI", "AVX512_BF16"] },
  { name: "zen4", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"] },
  { name: "alderlake", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI"] },
  { name: "sapphirerapids", features: ["SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8"] },
];

/** /proc/cpuinfo `flags` names of each feature (the AVX512 variant needs the five -mavx512{f,cd,vl,dq,bw} sets). */
const CPUINFO_FLAGS: Record<X86Feature, readonly string[]> = {
  SSE42: ["sse4_2"],
  AVX: ["avx"],
  F16C: ["f16c"],
  FMA: ["fma"],
  AVX2: ["avx2"],
  BMI2: ["bmi2"],
  AVX_VNNI: ["avx_vnni"],
  AVX512: ["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"],
  AVX512_VBMI: ["avx512vbmi"],
  AVX512_VNNI: ["avx512_vnni"],
  AVX512_BF16: ["avx512_bf16"],
  AMX_TILE: ["amx_tile"],
  AMX_INT8: ["amx_int8"],
};

/** The variant ggml would load for a CPU with these /proc/cpuinfo flags: the supported one with the most features. */
export function pickX86CpuVariant(cpuinfoFlags: ReadonlySet<string>): { name: string; features: readonly X86Feature[] } {
  let best = X86_CPU_VARIANTS[0]!;
  for (const variant of X86_CPU_VARIANTS) {
    const supported = variant.features.every((f) => CPUINFO_FLAGS[f].every((flag) => cpuinfoFlags.has(flag)));
    if (supported && variant.features.length > best.features.length) best = variant;
  }
  return best;
}

/**
 * The variant called `name`, where a CPU with these /proc/cpuinfo flags can run it; throws otherwise (an unknown name,
 * or a variant needing instruction sets this CPU lacks: its library would die on an illegal instruction). Any
 * variant ggml would not pick itself runs here only when asked for by name, to measure another CPU's kernels.
 */
export function runnableX86CpuVariant(name: string, cpuinfoFlags: ReadonlySet<string>): { name: string; features: readonly X86Feature[] } {
  const variant = X86_CPU_VARIANTS.find((v) => v.name === name);
  if (!variant) throw new Error(`unknown ggml x86 CPU variant "${name}"; known: ${X86_CPU_VARIANTS.map((v) => v.name).join(", ")}`);
  const lacking = variant.features.filter((f) => !CPUINFO_FLAGS[f].every((flag) => cpuinfoFlags.has(flag)));
  if (lacking.length > 0) throw new Error(`this CPU cannot run the ggml CPU variant "${name}": it lacks ${lacking.join(", ")}`);
  return variant;
}

/** The `flags` line of /proc/cpuinfo as a set (empty when there is none). */
export function parseCpuinfoFlags(cpuinfo: string): Set<string> {
  const line = cpuinfo.split("\n").find((l) => /^flags\s*:/.test(l));
  return new Set(line ? line.replace(/^flags\s*:/, "").trim().split(/\s+/) : []);
}

/** `-DGGML_<feature>=ON|OFF` for every x86 feature option, so no cmake default (ON for AVX2 & co.) leaks in. */
export function cmakeFeatureOptions(features: readonly X86Feature[]): string[] {
  const all: string[] = [...Object.keys(CPUINFO_FLAGS), "AMX_BF16"];
  return all.map((f) => `-DGGML_${f}=${features.includes(f as X86Feature) ? "ON" : "OFF"}`);
}
