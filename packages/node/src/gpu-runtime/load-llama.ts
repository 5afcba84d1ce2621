import { existsSync } from "node:fs";
import { register } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Llama } from "node-llama-cpp";
import type { GpuBuildKind } from "./gpu-builds.js";
import { type GpuRuntimeRecord, installedBesideNodeLlamaCpp, nodeLlamaCppVersion, readGpuRuntimeRecord } from "./gpu-runtime-record.js";

/**
 * Loads llama.cpp for the embedded engine: the GPU build from the data dir when `tessera gpu setup` installed one,
 * else (or when it fails to load: no device, driver too old) the CPU build of the lean install.
 *
 * How the GPU build is found: node-llama-cpp looks for its prebuilt binaries with a bare
 * `import("@node-llama-cpp/<platform>-<gpu>")` from its own dist (3.22 bindings/utils/compileLLamaCpp.js), which
 * resolves to the omitted-gpu-variant stub of the lean install. A module resolve hook (node:module `register`) makes
 * exactly the packages listed in the runtime record resolve from `<data dir>/gpu-runtime/node_modules` instead;
 * every other specifier resolves as before. It is a data: URL so it runs the same from dist and from sources.
 */
export type LlamaBuild = GpuBuildKind | "cpu";

export interface LoadedLlama {
  llama: Llama;
  build: LlamaBuild;
  /** One line for the log and doctor: which build, and why not the GPU one when it fell back. */
  detail: string;
}

export type GetLlama = (options: {
  gpu: GpuBuildKind | false;
  build: "never";
  progressLogs: false;
  logLevel?: unknown;
  /** VRAM node-llama-cpp leaves unused when it fits GPU layers and context ("auto"), from the GPU's total. */
  vramPadding?: (totalVram: number) => number;
}) => Promise<Llama>;

export interface LoadLlamaOptions {
  /** `<data dir>/gpu-runtime`; undefined: CPU only. */
  runtimeDir: string | undefined;
  getLlama: GetLlama;
  logLevel?: unknown;
  log?: (level: "info" | "warn", message: string) => void;
  /**
   * `[limits] max_vram_fraction`: the share of the GPU's memory the engine may fill. The rest is node-llama-cpp's VRAM
   * padding, so its automatic fit of GPU layers and context stays within the share. Default 1 (its own padding).
   */
  maxVramFraction?: number;
  /** Test seams. */
  version?: string;
  installHook?: (runtimeDir: string, packages: string[]) => void;
}

const RESOLVE_HOOK = `data:text/javascript,${encodeURIComponent(`
let redirect = { parentURL: "", packages: [] };
export async function initialize(data) { redirect = data; }
export async function resolve(specifier, context, next) {
  if (redirect.packages.includes(specifier)) return next(specifier, { ...context, parentURL: redirect.parentURL });
  return next(specifier, context);
}
`)}`;

const hooked = new Set<string>();

/** Registers the resolve hook once per runtime dir in this process (a later registration is consulted first). */
export function installGpuResolveHook(runtimeDir: string, packages: string[]): void {
  if (hooked.has(runtimeDir) || packages.length === 0) return;
  hooked.add(runtimeDir);
  register(RESOLVE_HOOK, { data: { parentURL: pathToFileURL(join(runtimeDir, "package.json")).href, packages } });
}

/** What the data dir holds, without loading anything: doctor's view, and the first half of loadLlama. */
export function gpuRuntimeState(runtimeDir: string | undefined, version = nodeLlamaCppVersion()): { record?: GpuRuntimeRecord; usable: boolean; detail: string } {
  const record = runtimeDir !== undefined ? readGpuRuntimeRecord(runtimeDir) : undefined;
  if (!record) return { usable: false, detail: "no GPU build installed (`tessera gpu setup` installs one)" };
  if (record.version !== version) {
    return { record, usable: false, detail: `the ${record.gpu} build in ${runtimeDir} is for node-llama-cpp ${record.version}, this install has ${version}: run \`tessera gpu setup\` again` };
  }
  const missing = record.packages.filter((p) => !existsSync(join(runtimeDir!, "node_modules", ...p.split("/"), "package.json")));
  if (record.packages.length === 0 && record.gpu === "metal" && !installedBesideNodeLlamaCpp("@node-llama-cpp/mac-arm64-metal", version)) missing.push("@node-llama-cpp/mac-arm64-metal");
  if (missing.length > 0) return { record, usable: false, detail: `the ${record.gpu} build is incomplete (missing ${missing.join(", ")}): run \`tessera gpu setup\` again` };
  return { record, usable: true, detail: `${record.gpu} build (node-llama-cpp ${record.version}${record.packages.length > 0 ? ` in ${runtimeDir}` : ""})` };
}

export async function loadLlama(options: LoadLlamaOptions): Promise<LoadedLlama> {
  const log = options.log ?? (() => {});
  const cpu = async (why: string): Promise<LoadedLlama> => {
    const llama = await options.getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: options.logLevel });
    return { llama, build: "cpu", detail: `CPU build${why ? ` (${why})` : ""}` };
  };
  let state: ReturnType<typeof gpuRuntimeState>;
  try {
    state = gpuRuntimeState(options.runtimeDir, options.version);
  } catch (err) {
    state = { usable: false, detail: (err as Error).message };
  }
  if (!state.record) return cpu("");
  if (!state.usable) {
    log("warn", `embedded engine: ${state.detail}; using the CPU build`);
    return cpu(state.detail);
  }
  const { record } = state;
  (options.installHook ?? installGpuResolveHook)(options.runtimeDir!, record.packages);
  try {
    const fraction = options.maxVramFraction;
    const llama = await options.getLlama({
      gpu: record.gpu,
      build: "never",
      progressLogs: false,
      logLevel: options.logLevel,
      ...(fraction !== undefined && fraction < 1 ? { vramPadding: (total: number) => Math.ceil(total * (1 - fraction)) } : {}),
    });
    if (llama.gpu !== record.gpu) {
      await llama.dispose();
      throw new Error(`node-llama-cpp loaded a ${String(llama.gpu)} build instead`);
    }
    log("info", `embedded engine: llama.cpp ${state.detail}`);
    return { llama, build: record.gpu, detail: state.detail };
  } catch (err) {
    const why = `the ${record.gpu} build did not load: ${(err as Error).message.split("\n")[0]}`;
    log("warn", `embedded engine: ${why}; using the CPU build`);
    return cpu(why);
  }
}
