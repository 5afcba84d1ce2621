import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { GPU_BUILD_KINDS, type GpuBuildKind } from "./gpu-builds.js";

/**
 * The GPU runtime lives in `<data dir>/gpu-runtime`: an npm prefix holding the `@node-llama-cpp/<platform>` packages
 * `tessera gpu setup` installed, and `tessera-gpu-runtime.json`, the record the embedded engine and doctor read.
 */
export const GPU_RUNTIME_DIR_NAME = "gpu-runtime";
export const GPU_RUNTIME_RECORD = "tessera-gpu-runtime.json";

export interface GpuRuntimeRecord {
  gpu: GpuBuildKind;
  /** The packages installed under this prefix (empty when the default install already has the build: Metal on macOS). */
  packages: string[];
  /** node-llama-cpp's version the packages were installed for; they load only with that same version. */
  version: string;
  installedAt: string;
}

export function gpuRuntimeDir(dataDir: string): string {
  return join(dataDir, GPU_RUNTIME_DIR_NAME);
}

export function readGpuRuntimeRecord(runtimeDir: string): GpuRuntimeRecord | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(runtimeDir, GPU_RUNTIME_RECORD), "utf8"));
  } catch {
    return undefined;
  }
  const r = raw as Partial<GpuRuntimeRecord>;
  if (!GPU_BUILD_KINDS.includes(r.gpu as GpuBuildKind) || !Array.isArray(r.packages) || typeof r.version !== "string") return undefined;
  return { gpu: r.gpu as GpuBuildKind, packages: r.packages.filter((p): p is string => typeof p === "string"), version: r.version, installedAt: String(r.installedAt ?? "") };
}

export function writeGpuRuntimeRecord(runtimeDir: string, record: GpuRuntimeRecord): void {
  mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(runtimeDir, GPU_RUNTIME_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

/** The version of the node-llama-cpp this process loads (its package.json is not in its exports map: walk from main). */
export function nodeLlamaCppVersion(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve("node-llama-cpp");
  for (let dir = dirname(main); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "node-llama-cpp" && pkg.version) return pkg.version;
    } catch {
      // no package.json at this level
    }
  }
  throw new Error("cannot find node-llama-cpp's package.json");
}

/** Whether the package resolves from here (the lean install) to a real build, not the omitted-gpu-variant stub. */
export function installedBesideNodeLlamaCpp(packageName: string, version: string): boolean {
  const require = createRequire(createRequire(import.meta.url).resolve("node-llama-cpp"));
  try {
    const dir = dirname(require.resolve(`${packageName}/package.json`));
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
    return pkg.name === packageName && pkg.version === version;
  } catch {
    return false;
  }
}
