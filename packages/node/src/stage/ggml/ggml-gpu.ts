/**
 * ggml's GPU backends (Vulkan, CUDA, Metal) for a layer span: where their library is, loading it beside the same
 * release's libggml-base, and the GPU devices it finds (design.md here, "GPU backends").
 *
 * The backend library comes from node-llama-cpp's GPU build: the package `tessera gpu setup` installed under
 * `<data dir>/gpu-runtime`, or the same package resolved beside node-llama-cpp (the default install has only a stub
 * there, without `bins/`). Contract: `probeGpuBackend` never throws; it answers the backend with its GPU devices, or
 * why not in words an operator can act on (no build installed, a system library missing, no device).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type koffi from "koffi";
import { TesseraError } from "@tessera/protocol";
import type { GpuStageBackend } from "../stage-backend.js";
import { ffi, ggmlRelease, libFile, loadGgml, type GgmlLib, type Ptr } from "./ggml-lib.js";
import { ggmlSelfCheck } from "./ggml-self-check.js";

/** ggml_backend_dev_type (ggml-backend.h): CPU 0, GPU 1, IGPU 2, ACCEL 3, META 4. */
const DEVICE_TYPE_GPU = 1;
const DEVICE_TYPE_IGPU = 2;

export interface GpuDevice {
  /** Index in the backend's device list (ggml_backend_reg_dev_get). */
  index: number;
  name: string;
  description: string;
  integrated: boolean;
  freeBytes: number;
  totalBytes: number;
}

export interface GpuBackend {
  kind: GpuStageBackend;
  /** Folder of the backend library, and of the libggml-base it runs with. */
  dir: string;
  baseDir: string;
  file: string;
  /** The GPU devices it found (at least one). */
  devices: GpuDevice[];
  /** The device handle for ggml_backend_dev_init. */
  device(index: number): Ptr;
  /** Free and total bytes of a device now (ggml_backend_dev_memory). */
  memory(index: number): { freeBytes: number; totalBytes: number };
}

/**
 * A GPU backend that runs here, with the devices that passed the compute check (`failed`: why the others did not), or
 * why it does not run.
 */
export type GpuProbeResult = { ok: true; lib: GgmlLib; gpu: GpuBackend; failed?: string[] } | { ok: false; why: string };

export interface GpuLocation {
  /** `<data dir>/gpu-runtime`, where `tessera gpu setup` installs the GPU build. */
  gpuRuntimeDir?: string;
}

const OS: Record<string, string> = { linux: "linux", darwin: "mac", win32: "win" };

/** node-llama-cpp's packages that may hold a backend's library, main first (as gpu-runtime/gpu-builds.ts installs them). */
export function gpuPackages(kind: GpuStageBackend, platform: string = process.platform, arch: string = process.arch): string[] {
  const os = OS[platform];
  if (!os) return [];
  if (kind === "metal") return platform === "darwin" && arch === "arm64" ? ["@node-llama-cpp/mac-arm64-metal"] : [];
  if (platform === "darwin") return [];
  return kind === "cuda" ? [`@node-llama-cpp/${os}-${arch}-cuda`, `@node-llama-cpp/${os}-${arch}-cuda-ext`] : [`@node-llama-cpp/${os}-${arch}-vulkan`];
}

/** The folders where a package's libraries may sit: under the GPU runtime prefix, then beside node-llama-cpp. */
function packageBinDirs(pkg: string, where: GpuLocation): string[] {
  const bins = pkg.replace("@node-llama-cpp/", "");
  const dirs: string[] = [];
  if (where.gpuRuntimeDir) dirs.push(join(where.gpuRuntimeDir, "node_modules", pkg, "bins", bins));
  try {
    const fromNlc = createRequire(createRequire(import.meta.url).resolve("node-llama-cpp"));
    const pkgJson = fromNlc.resolve(`${pkg}/package.json`);
    // The lean install maps GPU packages to a stub of another name (root package.json overrides): not a build.
    if ((JSON.parse(readFileSync(pkgJson, "utf8")) as { name?: string }).name === pkg) dirs.push(join(dirname(pkgJson), "bins", bins));
  } catch {
    // not resolvable beside node-llama-cpp
  }
  return dirs;
}

export interface GpuLibLocation {
  /** The backend library's folder and the libggml-base folder it runs with. */
  dir: string;
  baseDir: string;
}

/** Where the backend's library is, or what was looked for (for the error). */
export function findGpuLib(kind: GpuStageBackend, where: GpuLocation = {}): GpuLibLocation | { missing: string } {
  const packages = gpuPackages(kind);
  if (packages.length === 0) return { missing: `node-llama-cpp publishes no ${kind} build for ${process.platform}-${process.arch}` };
  const file = libFile(`ggml-${kind}`);
  const looked: string[] = [];
  for (const pkg of packages) {
    for (const dir of packageBinDirs(pkg, where)) {
      looked.push(dir);
      if (!existsSync(join(dir, file))) continue;
      if (existsSync(join(dir, libFile("ggml-base")))) return { dir, baseDir: dir };
      // CUDA's -ext package may hold a backend without a base: the main package's folder has it.
      const main = packageBinDirs(packages[0]!, where).find((d) => existsSync(join(d, libFile("ggml-base"))));
      if (main) return { dir, baseDir: main };
    }
  }
  return { missing: `no ${kind} build is installed (${file} of ${packages.join(" / ")} not found${looked.length ? ` in ${looked.join(", ")}` : ""}): \`tessera gpu setup --build ${kind}\` installs it` };
}

/** Says what a failed dlopen of a backend library means for the operator (the system library it could not find). */
export function explainGpuLoadError(kind: GpuStageBackend, path: string, message: string): string {
  if (/libvulkan\.so|vulkan-1\.dll/i.test(message)) return `the Vulkan loader (libvulkan.so.1) is not installed: install the GPU driver with its Vulkan support (e.g. libvulkan1 and mesa-vulkan-drivers, or NVIDIA's driver) [${message}]`;
  if (/libcuda\.so|nvcuda\.dll/i.test(message)) return `the NVIDIA driver is missing (libcuda.so.1 not found): install NVIDIA's driver [${message}]`;
  if (/cudart|cublas/i.test(message)) return `the CUDA runtime is not installed (libcudart / libcublas not found): install the CUDA toolkit's runtime libraries [${message}]`;
  return `cannot load the ${kind} backend ${path}: ${message}`;
}

/** What a backend that loads but does not initialise (ggml_backend_init returns NULL) most likely lacks. */
const NO_DRIVER: Record<GpuStageBackend, string> = {
  vulkan: "the Vulkan loader found no driver for a GPU (install the GPU driver's Vulkan support: NVIDIA's driver, or mesa-vulkan-drivers for AMD and Intel)",
  cuda: "no CUDA driver or device (install NVIDIA's driver; nvidia-smi should list the GPU)",
  metal: "Metal found no device",
};

/** The library files are loaded once per process (dlopen); their JS bindings once per thread. */
const opened = new Map<string, GpuBackend>();

/**
 * Loads the backend library in `dir` against the already loaded `g` (the same release) and lists its GPU devices.
 * Throws TesseraError("unsupported_parameter") saying why the backend cannot be used.
 */
export function openGpuBackend(g: GgmlLib, kind: GpuStageBackend, dir: string): GpuBackend {
  const cached = opened.get(`${kind}:${dir}`);
  if (cached) return cached;
  const unusable = (why: string) => new TesseraError("unsupported_parameter", `stage backend ${kind} cannot run here: ${why}`);
  if (ggmlRelease(dir) !== ggmlRelease(g.dir)) throw unusable(`${dir} is ggml ${ggmlRelease(dir) ?? "(unknown)"}, the loaded libggml-base (${g.dir}) is ${ggmlRelease(g.dir) ?? "(unknown)"}`);
  const file = libFile(`ggml-${kind}`);
  const path = join(dir, file);
  let lib: koffi.IKoffiLib;
  try {
    lib = ffi().load(path);
  } catch (cause) {
    throw unusable(explainGpuLoadError(kind, path, (cause as Error).message));
  }
  // What ggml_backend_load does (ggml-backend-reg.cpp), without its registry: a score of 0 means this machine
  // cannot run the build; ggml_backend_init returns the backend's registration.
  let score = 1;
  try {
    score = (lib.func("int ggml_backend_score(void)") as () => number)();
  } catch {
    // GPU backends usually export no score
  }
  if (score === 0) throw unusable(`${file} scores 0 on this machine (a feature it was built for is missing)`);
  let reg: Ptr;
  try {
    reg = (lib.func("ggml_backend_reg * ggml_backend_init(void)") as () => Ptr)();
  } catch (cause) {
    throw unusable(`${path} has no ggml_backend_init: ${(cause as Error).message}`);
  }
  if (!reg) throw unusable(`${file} loaded but did not initialise: ${NO_DRIVER[kind]}`);
  const handles: Ptr[] = [];
  const devices: GpuDevice[] = [];
  const count = g.regDevCount(reg);
  const memory = (dev: Ptr) => {
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    g.devMemory(dev, free, total);
    return { freeBytes: Number(free[0]), totalBytes: Number(total[0]) };
  };
  const others: string[] = [];
  for (let i = 0; i < count; i++) {
    const dev = g.regDevGet(reg, i);
    const type = g.devType(dev);
    handles.push(dev);
    if (type !== DEVICE_TYPE_GPU && type !== DEVICE_TYPE_IGPU) {
      others.push(g.devName(dev));
      continue;
    }
    devices.push({ index: i, name: g.devName(dev), description: g.devDescription(dev), integrated: type === DEVICE_TYPE_IGPU, ...memory(dev) });
  }
  if (devices.length === 0) {
    throw unusable(`${file} (${g.regName(reg)}) loaded but found no GPU device${others.length ? ` (only ${others.join(", ")})` : ""}: is the GPU's driver installed and the GPU visible to this process?`);
  }
  const backend: GpuBackend = {
    kind,
    dir,
    baseDir: g.dir,
    file,
    devices,
    device: (index) => handles[index],
    memory: (index) => memory(handles[index]),
  };
  opened.set(`${kind}:${dir}`, backend);
  return backend;
}

/**
 * Whether the backend runs here: its build found, loaded with the same release's base, and a GPU device found that
 * computes right (checkGpuDevices).
 */
export function probeGpuBackend(kind: GpuStageBackend, where: GpuLocation = {}): GpuProbeResult {
  const found = findGpuLib(kind, where);
  if ("missing" in found) return { ok: false, why: found.missing };
  try {
    const lib = loadGgml(found.baseDir);
    return checkGpuDevices(lib, openGpuBackend(lib, kind, found.dir));
  } catch (err) {
    return { ok: false, why: (err as Error).message.replace(/^stage backend \S+ cannot run here: /, "") };
  }
}

/**
 * `gpu` with only the devices that compute: each is initialised and runs ggml's self-check (two mat-vecs against a
 * reference, ggml-self-check.ts) before a span may be placed on it, so a device whose driver lists it but computes
 * wrong or not at all is never chosen, and its memory never offered. Not ok when no device passes, saying why each
 * failed. `check` is the seam tests swap.
 */
export function checkGpuDevices(g: GgmlLib, gpu: GpuBackend, check: (g: GgmlLib, backend: Ptr) => void = ggmlSelfCheck): GpuProbeResult {
  const devices: GpuDevice[] = [];
  const failed: string[] = [];
  for (const device of gpu.devices) {
    const name = `${gpu.kind} device ${device.index} (${device.description || device.name})`;
    const backend = g.devInit(gpu.device(device.index), null);
    if (!backend) {
      failed.push(`${name} did not initialise`);
      continue;
    }
    try {
      check(g, backend);
      devices.push(device);
    } catch (err) {
      failed.push(`${name} failed its compute check: ${(err as Error).message}`);
    } finally {
      g.backendFree(backend);
    }
  }
  if (devices.length === 0) return { ok: false, why: failed.join("; ") };
  return { ok: true, lib: g, gpu: { ...gpu, devices }, ...(failed.length > 0 ? { failed } : {}) };
}

/**
 * The memory a GPU node offers for spans: the device's free memory now, never more than `maxFraction` of its total
 * (`[limits] max_vram_fraction`).
 */
export function gpuMemoryOffer(memory: { freeBytes: number; totalBytes: number }, maxFraction: number): number {
  if (!(maxFraction > 0 && maxFraction <= 1)) throw new RangeError(`max_vram_fraction must be in (0, 1], got ${maxFraction}`);
  return Math.max(0, Math.min(memory.freeBytes, Math.floor(memory.totalBytes * maxFraction)));
}
