/**
 * The ggml functions the ggml span runtime calls, bound through koffi (FFI) from the libraries that node-llama-cpp's
 * platform package ships (see design.md in this folder). Only what the span uses is bound, each with its C signature
 * from ggml.h / ggml-backend.h / ggml-alloc.h / ggml-cpu.h of the llama.cpp release the package was built from.
 *
 * Contract: `loadGgml()` returns the bound libraries or throws `TesseraError("internal_error")` naming what is missing;
 * it loads them once per process (a second call returns the same object). Pointers are koffi externals: opaque to JS,
 * passed back to ggml as they came.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type koffi from "koffi";
import { TesseraError } from "@tessera/protocol";

/** koffi is loaded on first use, so a platform without its prebuilt binary still runs the WebAssembly runtime. */
let koffiModule: typeof koffi | undefined;
export function ffi(): typeof koffi {
  if (!koffiModule) {
    try {
      koffiModule = createRequire(import.meta.url)("koffi") as typeof koffi;
    } catch (cause) {
      throw new TesseraError("internal_error", `the FFI package koffi cannot be loaded here: ${(cause as Error).message}`, { cause });
    }
  }
  return koffiModule;
}

/** ggml_type values (ggml.h), the same numbers as GGUF's tensor types. */
export const GGML = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, Q6_K: 14, I32: 26, I64: 27, BF16: 30 } as const;
/** GGML_ROPE_TYPE_NORMAL: adjacent pairs, the mode of `llama` (llama.cpp's LLAMA_ROPE_TYPE_NORM). */
export const GGML_ROPE_TYPE_NORMAL = 0;

export type Ptr = unknown;

export interface GgmlLib {
  /** Directory the libraries were loaded from, and the file name of the CPU variant chosen. */
  readonly dir: string;
  readonly cpuVariant: string;
  /** Which build: the platform package and its version, and the ggml release it was built from (ggmlBuild()). */
  readonly version: string;
  init(memSize: number, noAlloc: boolean): Ptr;
  free(ctx: Ptr): void;
  tensorOverhead(): number;
  graphOverheadCustom(size: number, grads: boolean): number;
  newTensor1d(ctx: Ptr, type: number, ne0: number): Ptr;
  newTensor2d(ctx: Ptr, type: number, ne0: number, ne1: number): Ptr;
  newTensor3d(ctx: Ptr, type: number, ne0: number, ne1: number, ne2: number): Ptr;
  nbytes(t: Ptr): number;
  rowSize(type: number, ne: number): number;
  setName(t: Ptr, name: string): Ptr;
  setInput(t: Ptr): void;
  setOutput(t: Ptr): void;
  mulMat(ctx: Ptr, a: Ptr, b: Ptr): Ptr;
  mul(ctx: Ptr, a: Ptr, b: Ptr): Ptr;
  add(ctx: Ptr, a: Ptr, b: Ptr): Ptr;
  rmsNorm(ctx: Ptr, a: Ptr, eps: number): Ptr;
  ropeExt(ctx: Ptr, a: Ptr, pos: Ptr, freqFactors: Ptr | null, nDims: number, mode: number, nCtxOrig: number, freqBase: number, freqScale: number, extFactor: number, attnFactor: number, betaFast: number, betaSlow: number): Ptr;
  softMaxExt(ctx: Ptr, a: Ptr, mask: Ptr | null, scale: number, maxBias: number): Ptr;
  swigluSplit(ctx: Ptr, gate: Ptr, up: Ptr): Ptr;
  getRows(ctx: Ptr, a: Ptr, ids: Ptr): Ptr;
  /** Writes b's rows into a at the rows the I64 tensor c names (a view of a, to expand into the graph). */
  setRows(ctx: Ptr, a: Ptr, b: Ptr, c: Ptr): Ptr;
  cont2d(ctx: Ptr, a: Ptr, ne0: number, ne1: number): Ptr;
  reshape2d(ctx: Ptr, a: Ptr, ne0: number, ne1: number): Ptr;
  reshape3d(ctx: Ptr, a: Ptr, ne0: number, ne1: number, ne2: number): Ptr;
  permute(ctx: Ptr, a: Ptr, ax0: number, ax1: number, ax2: number, ax3: number): Ptr;
  view1d(ctx: Ptr, a: Ptr, ne0: number, offset: number): Ptr;
  view2d(ctx: Ptr, a: Ptr, ne0: number, ne1: number, nb1: number, offset: number): Ptr;
  view3d(ctx: Ptr, a: Ptr, ne0: number, ne1: number, ne2: number, nb1: number, nb2: number, offset: number): Ptr;
  newGraphCustom(ctx: Ptr, size: number, grads: boolean): Ptr;
  buildForwardExpand(graph: Ptr, t: Ptr): void;
  backendCpuInit(): Ptr;
  backendCpuSetNThreads(backend: Ptr, n: number): void;
  backendFree(backend: Ptr): void;
  backendDefaultBufferType(backend: Ptr): Ptr;
  allocCtxTensors(ctx: Ptr, backend: Ptr): Ptr;
  bufferFree(buf: Ptr): void;
  bufferSize(buf: Ptr): number;
  bufferClear(buf: Ptr, value: number): void;
  tensorSet(t: Ptr, data: ArrayBufferView, offset: number, size: number): void;
  tensorGet(t: Ptr, data: ArrayBufferView, offset: number, size: number): void;
  graphCompute(backend: Ptr, graph: Ptr): number;
  /** The bytes a tensor takes in a buffer of this type (a backend may pad rows) and the type's alignment. */
  buftGetAllocSize(buft: Ptr, t: Ptr): number;
  buftGetAlignment(buft: Ptr): number;
  /** The CPU backend's buffer type (host memory), and a device's (its memory). */
  cpuBufferType(): Ptr;
  devBufferType(dev: Ptr): Ptr;
  gallocrNew(buft: Ptr): Ptr;
  gallocrAllocGraph(galloc: Ptr, graph: Ptr): boolean;
  gallocrFree(galloc: Ptr): void;
  /** The size of the allocator's compute buffer now (it only grows, and a growth moves every tensor it placed). */
  gallocrGetBufferSize(galloc: Ptr, bufferId: number): number;
  /** ggml-backend.h's device API (in libggml-base), for the GPU backends (ggml-gpu.ts). */
  regName(reg: Ptr): string;
  regDevCount(reg: Ptr): number;
  regDevGet(reg: Ptr, index: number): Ptr;
  devName(dev: Ptr): string;
  devDescription(dev: Ptr): string;
  /** ggml_backend_dev_memory: writes free and total bytes into the two one-element arrays. */
  devMemory(dev: Ptr, free: BigUint64Array, total: BigUint64Array): void;
  devType(dev: Ptr): number;
  devInit(dev: Ptr, params: string | null): Ptr;
  backendName(backend: Ptr): string;
  backendSupportsOp(backend: Ptr, op: Ptr): boolean;
  graphNNodes(graph: Ptr): number;
  graphNode(graph: Ptr, i: number): Ptr;
  opDesc(t: Ptr): string;
}

const SUFFIX: Record<string, string> = { linux: "so", darwin: "dylib", win32: "dll" };
const PLATFORM: Record<string, string> = { linux: "linux", darwin: "mac", win32: "win" };

/**
 * The directory of the installed @node-llama-cpp platform package's binaries for this OS and CPU
 * (`bins/<os>-<arch>/`), or undefined when that package is not installed.
 */
export function findGgmlDir(): string | undefined {
  const os = PLATFORM[process.platform];
  if (!os) return undefined;
  const name = `${os}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(`@node-llama-cpp/${name}`);
  } catch {
    return undefined;
  }
  // The package's main is dist/index.js; the libraries sit in bins/<name>/ beside dist/.
  const dir = join(dirname(entry), "..", "bins", name);
  return existsSync(join(dir, libFile("ggml-base"))) ? dir : undefined;
}

/**
 * The build the libraries in `dir` (`<package>/bins/<os>-<arch>/`) come from, for doctor and the log: the platform
 * package's name and version, and the release in node-llama-cpp's `_nlcBuildMetadata.json` beside them, e.g.
 * "@node-llama-cpp/linux-x64 3.22.1, ggml v0.5.0". Parts it cannot read are left out.
 */
export function ggmlBuild(dir: string): string {
  const read = (file: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  const pkg = read(join(dir, "..", "..", "package.json"));
  const meta = read(join(dir, "_nlcBuildMetadata.json")) as { buildOptions?: { llamaCpp?: { release?: string } } } | undefined;
  const parts: string[] = [];
  if (typeof pkg?.name === "string") parts.push(`${pkg.name} ${typeof pkg.version === "string" ? pkg.version : "?"}`);
  const release = meta?.buildOptions?.llamaCpp?.release;
  if (release) parts.push(`ggml ${release}`);
  return parts.join(", ") || "unknown build";
}

/** The llama.cpp release the libraries in `dir` were built from (`_nlcBuildMetadata.json`), or undefined. */
export function ggmlRelease(dir: string): string | undefined {
  try {
    const meta = JSON.parse(readFileSync(join(dir, "_nlcBuildMetadata.json"), "utf8")) as { buildOptions?: { llamaCpp?: { release?: string } } };
    return meta.buildOptions?.llamaCpp?.release;
  } catch {
    return undefined;
  }
}

/** The folder ggml was loaded from in this process (thread), if it was. */
export function loadedGgmlDir(): string | undefined {
  return loaded?.dir;
}

export function libFile(stem: string): string {
  const ext = SUFFIX[process.platform] ?? "so";
  return process.platform === "win32" ? `${stem}.${ext}` : `lib${stem}.${ext}`;
}

let loaded: GgmlLib | undefined;

/**
 * Loads libggml-base and the best CPU variant for this machine from `dir` (default: findGgmlDir()). With
 * `cpuVariant` (a file name a probe in another thread already chose) only that variant is loaded and scored, which
 * spares a worker thread loading every variant again.
 */
export function loadGgml(dir?: string, cpuVariant?: string): GgmlLib {
  if (loaded) {
    // One libggml-base per process: a backend library loaded later binds to the loaded one by its soname
    // (libggml-base.so), whatever folder it comes from, so a folder of another release must not be mixed in.
    if (dir !== undefined && dir !== loaded.dir && ggmlRelease(dir) !== ggmlRelease(loaded.dir)) {
      throw new TesseraError("internal_error", `ggml ${ggmlRelease(loaded.dir) ?? "(unknown release)"} is already loaded from ${loaded.dir}; ${dir} holds ${ggmlRelease(dir) ?? "an unknown release"}, and one process runs one release`);
    }
    return loaded;
  }
  const wanted = dir ?? findGgmlDir();
  if (!wanted) throw new TesseraError("internal_error", `the ggml libraries are not installed (no @node-llama-cpp/${PLATFORM[process.platform] ?? process.platform}-${process.arch} package)`);
  const d = baseDirFor(wanted);
  let base: koffi.IKoffiLib;
  try {
    base = ffi().load(join(d, libFile("ggml-base")));
  } catch (cause) {
    throw new TesseraError("internal_error", `cannot load ${join(d, libFile("ggml-base"))}: ${(cause as Error).message}`, { cause });
  }
  const picked = pickCpuVariant(d, cpuVariant);
  loaded = bind(base, picked.lib, d, picked.file);
  return loaded;
}

/**
 * The folder whose libggml-base this process uses when `dir` is asked for (design.md, "One libggml-base per
 * process"). The dynamic linker binds every ggml library's `DT_NEEDED libggml-base.so` (node-llama-cpp's addon, a
 * CPU variant, a GPU backend) to the first libggml-base the process mapped, matched by soname whatever its folder;
 * only a dlopen by full path, as ours, maps a second copy, whose functions would then run beside backends bound to
 * the first (measured with LD_DEBUG=bindings: a CPU variant loaded from the second copy's folder bound its 66 base
 * symbols to the first), each copy with its own globals (the log callback, ggml_init's one-time state). So a
 * libggml-base already mapped (by the embedded engine or the prompt tokenizer's node-llama-cpp, or by another
 * thread) is the one used, when it is the same release; with none mapped yet, `dir` is used only if it is the release
 * of node-llama-cpp's own package, since node-llama-cpp loading later in the process would bind to it.
 */
function baseDirFor(dir: string): string {
  const release = ggmlRelease(dir);
  const mapped = mappedGgmlBaseDir();
  if (mapped !== undefined) {
    if (ggmlRelease(mapped) !== release) {
      throw new TesseraError("internal_error", `ggml ${ggmlRelease(mapped) ?? "(unknown release)"} is already loaded from ${mapped}; ${dir} holds ${release ?? "an unknown release"}, and one process runs one release`);
    }
    return mapped;
  }
  const own = findGgmlDir();
  if (own !== undefined && own !== dir && ggmlRelease(own) !== release) {
    throw new TesseraError(
      "internal_error",
      `${dir} holds ggml ${release ?? "(unknown release)"}, and this node-llama-cpp's own build (${own}) is ${ggmlRelease(own) ?? "(unknown release)"}: ` +
        "llama.cpp loaded later in this process would run on the first; `tessera gpu setup` installs the GPU build of this node-llama-cpp",
    );
  }
  return dir;
}

/**
 * The folder of the libggml-base this process has mapped, read from `maps` (Linux: /proc/self/maps; elsewhere there
 * is none to read, and undefined is answered).
 */
export function mappedGgmlBaseDir(maps: string | undefined = readProcMaps()): string | undefined {
  if (maps === undefined) return undefined;
  const file = libFile("ggml-base");
  for (const line of maps.split("\n")) {
    const path = line.split(/\s+/).slice(5).join(" ");
    if (path.endsWith(`/${file}`)) return dirname(path);
  }
  return undefined;
}

function readProcMaps(): string | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    return readFileSync("/proc/self/maps", "utf8");
  } catch {
    return undefined;
  }
}

/**
 * The CPU backend comes in one file per instruction-set level (libggml-cpu-x64, -haswell, -skylakex, -zen4, ...).
 * Each exports `ggml_backend_score()`: 0 when this CPU lacks an instruction the build needs, otherwise higher for a
 * more capable build. We take the highest score, which is what ggml's own loader (`ggml_backend_load_best`) does.
 */
function pickCpuVariant(dir: string, only?: string): { lib: koffi.IKoffiLib; file: string } {
  const prefix = libFile("ggml-cpu").replace(/\.[a-z]+$/, "");
  const files = readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith(`.${SUFFIX[process.platform] ?? "so"}`) && (only === undefined || f === only)).sort();
  let best: { lib: koffi.IKoffiLib; file: string; score: number } | undefined;
  for (const file of files) {
    let lib: koffi.IKoffiLib;
    try {
      lib = ffi().load(join(dir, file));
    } catch {
      continue;
    }
    let score = 0;
    try {
      score = (lib.func("int ggml_backend_score(void)") as () => number)();
    } catch {
      score = file === libFile("ggml-cpu") ? 1 : 0; // a single non-variant build has no score function
    }
    if (score > 0 && (!best || score > best.score)) {
      best?.lib.unload();
      best = { lib, file, score };
    } else {
      lib.unload();
    }
  }
  if (!best) throw new TesseraError("internal_error", `no ggml CPU backend in ${dir} runs on this CPU`);
  return { lib: best.lib, file: best.file };
}

function bind(base: koffi.IKoffiLib, cpu: koffi.IKoffiLib, dir: string, cpuVariant: string): GgmlLib {
  const koffi = ffi();
  koffi.opaque("ggml_context");
  koffi.opaque("ggml_tensor");
  koffi.opaque("ggml_cgraph");
  koffi.opaque("ggml_backend");
  koffi.opaque("ggml_backend_buffer");
  koffi.opaque("ggml_backend_buffer_type");
  koffi.opaque("ggml_gallocr");
  koffi.opaque("ggml_backend_reg");
  koffi.opaque("ggml_backend_device");
  koffi.struct("ggml_init_params", { mem_size: "size_t", mem_buffer: "void *", no_alloc: "bool" });
  const f = (proto: string) => base.func(proto) as (...args: unknown[]) => unknown;
  const T = "ggml_tensor *";
  const C = "ggml_context * ctx";
  const init = f("ggml_context * ggml_init(ggml_init_params params)");
  const fns = {
    free: f(`void ggml_free(${C})`),
    tensorOverhead: f("size_t ggml_tensor_overhead(void)"),
    graphOverheadCustom: f("size_t ggml_graph_overhead_custom(size_t size, bool grads)"),
    newTensor1d: f(`${T} ggml_new_tensor_1d(${C}, int type, int64_t ne0)`),
    newTensor2d: f(`${T} ggml_new_tensor_2d(${C}, int type, int64_t ne0, int64_t ne1)`),
    newTensor3d: f(`${T} ggml_new_tensor_3d(${C}, int type, int64_t ne0, int64_t ne1, int64_t ne2)`),
    nbytes: f(`size_t ggml_nbytes(${T} t)`),
    rowSize: f("size_t ggml_row_size(int type, int64_t ne)"),
    setName: f(`${T} ggml_set_name(${T} t, const char * name)`),
    setInput: f(`void ggml_set_input(${T} t)`),
    setOutput: f(`void ggml_set_output(${T} t)`),
    mulMat: f(`${T} ggml_mul_mat(${C}, ${T} a, ${T} b)`),
    mul: f(`${T} ggml_mul(${C}, ${T} a, ${T} b)`),
    add: f(`${T} ggml_add(${C}, ${T} a, ${T} b)`),
    rmsNorm: f(`${T} ggml_rms_norm(${C}, ${T} a, float eps)`),
    ropeExt: f(`${T} ggml_rope_ext(${C}, ${T} a, ${T} b, ${T} c, int n_dims, int mode, int n_ctx_orig, float freq_base, float freq_scale, float ext_factor, float attn_factor, float beta_fast, float beta_slow)`),
    softMaxExt: f(`${T} ggml_soft_max_ext(${C}, ${T} a, ${T} mask, float scale, float max_bias)`),
    swigluSplit: f(`${T} ggml_swiglu_split(${C}, ${T} a, ${T} b)`),
    getRows: f(`${T} ggml_get_rows(${C}, ${T} a, ${T} b)`),
    setRows: f(`${T} ggml_set_rows(${C}, ${T} a, ${T} b, ${T} c)`),
    cont2d: f(`${T} ggml_cont_2d(${C}, ${T} a, int64_t ne0, int64_t ne1)`),
    reshape2d: f(`${T} ggml_reshape_2d(${C}, ${T} a, int64_t ne0, int64_t ne1)`),
    reshape3d: f(`${T} ggml_reshape_3d(${C}, ${T} a, int64_t ne0, int64_t ne1, int64_t ne2)`),
    permute: f(`${T} ggml_permute(${C}, ${T} a, int ax0, int ax1, int ax2, int ax3)`),
    view1d: f(`${T} ggml_view_1d(${C}, ${T} a, int64_t ne0, size_t offset)`),
    view2d: f(`${T} ggml_view_2d(${C}, ${T} a, int64_t ne0, int64_t ne1, size_t nb1, size_t offset)`),
    view3d: f(`${T} ggml_view_3d(${C}, ${T} a, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1, size_t nb2, size_t offset)`),
    newGraphCustom: f(`ggml_cgraph * ggml_new_graph_custom(${C}, size_t size, bool grads)`),
    buildForwardExpand: f(`void ggml_build_forward_expand(ggml_cgraph * g, ${T} t)`),
    backendFree: f("void ggml_backend_free(ggml_backend * b)"),
    backendDefaultBufferType: f("ggml_backend_buffer_type * ggml_backend_get_default_buffer_type(ggml_backend * b)"),
    allocCtxTensors: f(`ggml_backend_buffer * ggml_backend_alloc_ctx_tensors(${C}, ggml_backend * b)`),
    bufferFree: f("void ggml_backend_buffer_free(ggml_backend_buffer * buf)"),
    bufferSize: f("size_t ggml_backend_buffer_get_size(ggml_backend_buffer * buf)"),
    bufferClear: f("void ggml_backend_buffer_clear(ggml_backend_buffer * buf, uint8_t value)"),
    tensorSet: f(`void ggml_backend_tensor_set(${T} t, const void * data, size_t offset, size_t size)`),
    tensorGet: f(`void ggml_backend_tensor_get(const ${T} t, void * data, size_t offset, size_t size)`),
    graphCompute: f("int ggml_backend_graph_compute(ggml_backend * b, ggml_cgraph * g)"),
    buftGetAllocSize: f(`size_t ggml_backend_buft_get_alloc_size(ggml_backend_buffer_type * buft, const ${T} t)`),
    buftGetAlignment: f("size_t ggml_backend_buft_get_alignment(ggml_backend_buffer_type * buft)"),
    cpuBufferType: f("ggml_backend_buffer_type * ggml_backend_cpu_buffer_type(void)"),
    devBufferType: f("ggml_backend_buffer_type * ggml_backend_dev_buffer_type(ggml_backend_device * dev)"),
    gallocrNew: f("ggml_gallocr * ggml_gallocr_new(ggml_backend_buffer_type * buft)"),
    gallocrAllocGraph: f("bool ggml_gallocr_alloc_graph(ggml_gallocr * g, ggml_cgraph * graph)"),
    gallocrFree: f("void ggml_gallocr_free(ggml_gallocr * g)"),
    gallocrGetBufferSize: f("size_t ggml_gallocr_get_buffer_size(ggml_gallocr * g, int buffer_id)"),
    regName: f("const char * ggml_backend_reg_name(ggml_backend_reg * reg)"),
    regDevCount: f("size_t ggml_backend_reg_dev_count(ggml_backend_reg * reg)"),
    regDevGet: f("ggml_backend_device * ggml_backend_reg_dev_get(ggml_backend_reg * reg, size_t index)"),
    devName: f("const char * ggml_backend_dev_name(ggml_backend_device * dev)"),
    devDescription: f("const char * ggml_backend_dev_description(ggml_backend_device * dev)"),
    devMemory: f("void ggml_backend_dev_memory(ggml_backend_device * dev, uint64_t * free, uint64_t * total)"),
    devType: f("int ggml_backend_dev_type(ggml_backend_device * dev)"),
    devInit: f("ggml_backend * ggml_backend_dev_init(ggml_backend_device * dev, const char * params)"),
    backendName: f("const char * ggml_backend_name(ggml_backend * b)"),
    backendSupportsOp: f(`bool ggml_backend_supports_op(ggml_backend * b, const ${T} op)`),
    graphNNodes: f("int ggml_graph_n_nodes(ggml_cgraph * g)"),
    graphNode: f(`${T} ggml_graph_node(ggml_cgraph * g, int i)`),
    opDesc: f(`const char * ggml_op_desc(const ${T} t)`),
    backendCpuInit: cpu.func("ggml_backend * ggml_backend_cpu_init(void)") as (...args: unknown[]) => unknown,
    backendCpuSetNThreads: cpu.func("void ggml_backend_cpu_set_n_threads(ggml_backend * b, int n)") as (...args: unknown[]) => unknown,
  };
  return {
    dir,
    cpuVariant,
    version: ggmlBuild(dir),
    init: (memSize, noAlloc) => init({ mem_size: memSize, mem_buffer: null, no_alloc: noAlloc }),
    ...(fns as unknown as Omit<GgmlLib, "dir" | "cpuVariant" | "version" | "init">),
  };
}
