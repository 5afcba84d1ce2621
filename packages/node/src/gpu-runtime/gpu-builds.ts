import type { GpuVendor } from "./detect-gpu.js";

/**
 * node-llama-cpp's prebuilt GPU builds, published on the npm registry as `@node-llama-cpp/<platform>` packages at
 * the same version as node-llama-cpp itself (it refuses a build whose version differs: compileLLamaCpp.js
 * `getBinariesPathFromModules`). The root package.json `overrides` replace the GPU ones with a stub so the default
 * install stays lean; `tessera gpu setup` installs the one this machine needs into the node's data dir instead.
 */
export type GpuBuildKind = "cuda" | "vulkan" | "metal";
export const GPU_BUILD_KINDS: readonly GpuBuildKind[] = ["cuda", "vulkan", "metal"];

export interface GpuBuild {
  gpu: GpuBuildKind;
  /** Packages to install, main first (CUDA comes with an `-ext` package of extra backends). */
  packages: string[];
}

const TABLE: Record<string, Partial<Record<GpuBuildKind, string[]>>> = {
  "linux-x64": { cuda: ["@node-llama-cpp/linux-x64-cuda", "@node-llama-cpp/linux-x64-cuda-ext"], vulkan: ["@node-llama-cpp/linux-x64-vulkan"] },
  "win32-x64": { cuda: ["@node-llama-cpp/win-x64-cuda", "@node-llama-cpp/win-x64-cuda-ext"], vulkan: ["@node-llama-cpp/win-x64-vulkan"] },
  "darwin-arm64": { metal: ["@node-llama-cpp/mac-arm64-metal"] },
};

/** The build a vendor gets by default: CUDA on NVIDIA, Vulkan on AMD (node-llama-cpp ships no ROCm build), Metal on Apple. */
const PREFERRED: Record<Exclude<GpuVendor, "none">, GpuBuildKind[]> = {
  nvidia: ["cuda", "vulkan"],
  amd: ["vulkan"],
  apple: ["metal"],
};

export type BuildChoice = { ok: true; build: GpuBuild } | { ok: false; reason: string };

export function chooseGpuBuild(platform: NodeJS.Platform, arch: string, vendor: GpuVendor, requested?: GpuBuildKind): BuildChoice {
  const builds = TABLE[`${platform}-${arch}`];
  if (!builds) return { ok: false, reason: `node-llama-cpp publishes no GPU build for ${platform}-${arch}` };
  if (requested) {
    const packages = builds[requested];
    return packages ? { ok: true, build: { gpu: requested, packages } } : { ok: false, reason: `node-llama-cpp publishes no ${requested} build for ${platform}-${arch} (it has: ${Object.keys(builds).join(", ")})` };
  }
  if (vendor === "none") return { ok: false, reason: "no NVIDIA, AMD or Apple GPU was found" };
  for (const gpu of PREFERRED[vendor]) {
    const packages = builds[gpu];
    if (packages) return { ok: true, build: { gpu, packages } };
  }
  return { ok: false, reason: `node-llama-cpp publishes no build for ${vendor} GPUs on ${platform}-${arch}` };
}
