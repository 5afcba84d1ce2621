/**
 * Which runtime computes a layer span: the WebAssembly runtime (stage.ts), ggml's CPU backend or one of ggml's GPU
 * backends (ggml/). One entry point, `loadSpan`, so a caller names a backend and gets a span with the same async
 * forward/dropRequest contract.
 *
 * `auto` takes the first GPU backend (cuda, metal, vulkan) that loads and finds a GPU device that passes the
 * self-check (ggml/ggml-self-check.ts: it initialises and computes two mat-vecs right), else ggml-cpu when its libraries
 * load and its self-check passes, else wasm, and says in `detail` why each one before it was skipped. A backend named explicitly that cannot run is refused (`unsupported_parameter`), never
 * replaced by another. The checks run once per process. A ggml span computes in its own worker thread
 * (ggml/ggml-worker-span.ts), so its forward does not block the caller's event loop; the WebAssembly span computes
 * on the calling thread, as before, behind the same promise-returning interface.
 */
import { TesseraError } from "@tessera/protocol";
import type { GgmlLib } from "./ggml/ggml-lib.js";
import { loadGgml } from "./ggml/ggml-lib.js";
import { gpuMemoryOffer, probeGpuBackend, type GpuBackend, type GpuDevice, type GpuLocation, type GpuProbeResult } from "./ggml/ggml-gpu.js";
import { ggmlSelfCheck } from "./ggml/ggml-self-check.js";
import { GgmlWorkerSpan, type LoadGgmlWorkerSpanOptions } from "./ggml/ggml-worker-span.js";
import { loadStage, type ForwardOptions, type PositionInput, type Stage, type TokenInput } from "./stage.js";
import { GPU_STAGE_BACKENDS, isGpuStageBackend, STAGE_BACKENDS, type GpuStageBackend, type SpanRuntimeName, type StageBackend } from "./stage-backend.js";
import { setStageThreads } from "./wasm-matvec.js";

export { STAGE_BACKENDS, GPU_STAGE_BACKENDS, type StageBackend, type GpuStageBackend, type SpanRuntimeName };

/** What both runtimes' spans offer. */
export interface Span {
  readonly isFirst: boolean;
  readonly isLast: boolean;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly start: number;
  readonly end: number;
  readonly maxContext: number;
  readonly loadedBytes: number;
  /**
   * Bytes the span's weights take where they run, as the backend allocated them (ggml: the weight buffer's size,
   * on the GPU for a GPU span; wasm: loadedBytes).
   */
  readonly allocatedBytes: number;
  /**
   * Stage.forward's contract, answered as a promise: calls on one span run in the order made, and the answer is the
   * span's own buffer, valid until the next forward on it starts.
   */
  forward(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options?: ForwardOptions): Promise<Float32Array>;
  cachedTokens(requestId: string): number;
  dropRequest(requestId: string): boolean;
  readonly activeRequests: number;
  /** Frees what the span holds outside the JS heap and ends its worker (ggml); the span cannot be used afterwards. */
  close(): Promise<void>;
}

/** The WebAssembly stage behind the Span interface: computes on the calling thread, answers a settled promise. */
export class WasmSpan implements Span {
  constructor(readonly stage: Stage) {}
  get isFirst(): boolean {
    return this.stage.isFirst;
  }
  get isLast(): boolean {
    return this.stage.isLast;
  }
  get hiddenSize(): number {
    return this.stage.hiddenSize;
  }
  get vocabSize(): number {
    return this.stage.vocabSize;
  }
  get start(): number {
    return this.stage.start;
  }
  get end(): number {
    return this.stage.end;
  }
  get maxContext(): number {
    return this.stage.maxContext;
  }
  get loadedBytes(): number {
    return this.stage.loadedBytes;
  }
  get allocatedBytes(): number {
    return this.stage.loadedBytes;
  }
  get activeRequests(): number {
    return this.stage.activeRequests;
  }
  async forward(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options?: ForwardOptions): Promise<Float32Array> {
    return this.stage.forward(requestId, input, positions, options);
  }
  cachedTokens(requestId: string): number {
    return this.stage.cachedTokens(requestId);
  }
  dropRequest(requestId: string): boolean {
    return this.stage.dropRequest(requestId);
  }
  async close(): Promise<void> {}
}

export interface LoadSpanOptions {
  path: string;
  start: number;
  end: number;
  backend: StageBackend;
  /** CPU threads: the WebAssembly runtime's matvec threads (process-wide) or the ggml span's thread pool. */
  threads?: number;
  maxContext?: number;
  /** Where `tessera gpu setup` installed the GPU build (`<data dir>/gpu-runtime`), for the GPU backends. */
  gpuRuntimeDir?: string;
  /** Where a ggml span's close reports a worker it had to terminate with the span not freed (the daemon's log). */
  warn?: (message: string) => void;
}

export interface LoadedSpan {
  span: Span;
  runtime: SpanRuntimeName;
  /** For the log: the CPU variant and build ggml runs, or why auto fell back to wasm. */
  detail: string;
}

export function isStageBackend(value: string): value is StageBackend {
  return (STAGE_BACKENDS as readonly string[]).includes(value);
}

/**
 * The seam tests swap: how the ggml libraries are loaded and checked, whether a GPU backend runs here, and how a
 * ggml span is started. A probe without `gpu` has no GPU backend (tests of the CPU choice).
 */
export interface GgmlProbe {
  load(): GgmlLib;
  check(g: GgmlLib): void;
  gpu?(kind: GpuStageBackend, where: GpuLocation): GpuProbeResult;
  startSpan?(options: LoadGgmlWorkerSpanOptions): Promise<GgmlWorkerSpan>;
}

const gpuChecked = new Map<string, GpuProbeResult>();
/** The real GPU probe, cached per backend and folder for the process (a library is loaded once). */
function realGpuProbe(kind: GpuStageBackend, where: GpuLocation): GpuProbeResult {
  const key = `${kind}:${where.gpuRuntimeDir ?? ""}`;
  let result = gpuChecked.get(key);
  if (!result) {
    result = probeGpuBackend(kind, where);
    gpuChecked.set(key, result);
  }
  return result;
}

const realProbe: GgmlProbe = { load: () => loadGgml(), check: ggmlSelfCheck, gpu: realGpuProbe };
type ProbeResult = { ok: true; lib: GgmlLib } | { ok: false; why: string };
let checked: ProbeResult | undefined;

/** Whether ggml-cpu is usable here: its libraries load and its self-check passes (cached per process for the real probe). */
export function probeGgmlCpu(probe: GgmlProbe = realProbe): ProbeResult {
  if (probe === realProbe && checked) return checked;
  let result: ProbeResult;
  try {
    const lib = probe.load();
    probe.check(lib);
    result = { ok: true, lib };
  } catch (err) {
    result = { ok: false, why: (err as Error).message };
  }
  if (probe === realProbe) checked = result;
  return result;
}

/** How a ggml library is named in the log and in doctor: its CPU variant, build and folder. */
export function describeGgml(lib: Pick<GgmlLib, "cpuVariant" | "version" | "dir">): string {
  return `${lib.cpuVariant}, ${lib.version}, from ${lib.dir}`;
}

/** How a GPU device is named in the log and in doctor. */
export function describeGpu(gpu: Pick<GpuBackend, "kind" | "file" | "dir">, device: GpuDevice): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  return `${device.description || device.name} (${gpu.kind} device ${device.index}, ${gib(device.freeBytes)} of ${gib(device.totalBytes)} GiB free), ${gpu.file} from ${gpu.dir}`;
}

/**
 * What `stage_backend` resolves to on this machine: the runtime spans get (with the ggml library, and for a GPU
 * backend the device), or why none (a backend named explicitly that cannot run: `code` is the error loadSpan throws).
 */
export type StageRuntimeChoice =
  | { runtime: SpanRuntimeName; detail: string; lib?: GgmlLib; gpu?: GpuBackend; device?: GpuDevice }
  | { runtime: undefined; detail: string; code?: "unsupported_parameter" | "internal_error" };

/** The GPU device a span of `gpu` runs on: the one with the most memory (a span is placed whole on one device). */
function pickDevice(gpu: GpuBackend): GpuDevice {
  return gpu.devices.reduce((a, b) => (b.totalBytes > a.totalBytes ? b : a));
}

/** The decision loadSpan makes, without loading a span: doctor prints it, loadSpan follows it. */
export function resolveStageRuntime(backend: StageBackend, probe: GgmlProbe = realProbe, where: GpuLocation = {}): StageRuntimeChoice {
  if (!isStageBackend(backend)) throw new TesseraError("bad_request", `stage backend ${String(backend)} is not one of ${STAGE_BACKENDS.join(", ")}`);
  if (backend === "wasm") return { runtime: "wasm", detail: "WebAssembly SIMD" };
  const gpuProbe = (kind: GpuStageBackend): GpuProbeResult => (probe.gpu ? probe.gpu(kind, where) : { ok: false, why: "this probe has no GPU backends" });
  const skipped: string[] = [];
  const onGpu = (kind: GpuStageBackend, r: Extract<GpuProbeResult, { ok: true }>): StageRuntimeChoice => {
    const device = pickDevice(r.gpu);
    const notUsed = [...skipped, ...(r.failed ?? [])];
    const before = notUsed.length ? `; skipped ${notUsed.join("; ")}` : "";
    return { runtime: kind, detail: `${describeGpu(r.gpu, device)}; compute check passed${before}`, lib: r.lib, gpu: r.gpu, device };
  };
  if (isGpuStageBackend(backend)) {
    const r = gpuProbe(backend);
    return r.ok ? onGpu(backend, r) : { runtime: undefined, code: "unsupported_parameter", detail: `stage backend ${backend} cannot run here: ${r.why}` };
  }
  if (backend === "auto" && probe.gpu) {
    for (const kind of GPU_STAGE_BACKENDS) {
      const r = gpuProbe(kind);
      if (r.ok) return onGpu(kind, r);
      skipped.push(`${kind}: ${r.why}`);
    }
  }
  const ggml = probeGgmlCpu(probe);
  const before = skipped.length ? `; skipped ${skipped.join("; ")}` : "";
  if (ggml.ok) return { runtime: "ggml-cpu", detail: `${describeGgml(ggml.lib)}; self-check passed${before}`, lib: ggml.lib };
  if (backend === "ggml-cpu") return { runtime: undefined, code: "internal_error", detail: `stage backend ggml-cpu is not usable here: ${ggml.why}` };
  return { runtime: "wasm", detail: `ggml-cpu not usable: ${ggml.why}${before}` };
}

/**
 * The memory a node offers for spans when `stage_backend` resolves to a GPU: the device's free memory, at most
 * `maxFraction` of it (`[limits] max_vram_fraction`); undefined for the CPU runtimes (they offer RAM as before).
 */
export function spanGpuMemoryOffer(choice: StageRuntimeChoice, maxFraction: number): number | undefined {
  if (!choice.runtime || !choice.gpu || !choice.device) return undefined;
  return gpuMemoryOffer(choice.gpu.memory(choice.device.index), maxFraction);
}

export async function loadSpan(options: LoadSpanOptions, probe: GgmlProbe = realProbe): Promise<LoadedSpan> {
  const { path, start, end, maxContext } = options;
  const threads = options.threads ?? 1;
  const choice = resolveStageRuntime(options.backend, probe, { gpuRuntimeDir: options.gpuRuntimeDir });
  if (choice.runtime === undefined) throw new TesseraError(choice.code ?? "internal_error", choice.detail);
  if (choice.runtime === "ggml-cpu") {
    const lib = choice.lib!;
    const span = await (probe.startSpan ?? GgmlWorkerSpan.load)({ path, start, end, maxContext, threads, libDir: lib.dir, cpuVariant: lib.cpuVariant, warn: options.warn });
    return { span, runtime: "ggml-cpu", detail: `${describeGgml({ cpuVariant: span.cpuVariant, version: lib.version, dir: span.libDir })}; in a worker thread, ${threads} thread(s)` };
  }
  if (choice.runtime !== "wasm") {
    const lib = choice.lib!;
    const gpu = choice.gpu!;
    const device = choice.device!;
    const span = await (probe.startSpan ?? GgmlWorkerSpan.load)({
      path, start, end, maxContext, threads, libDir: lib.dir, cpuVariant: lib.cpuVariant, gpu: { kind: choice.runtime, dir: gpu.dir, device: device.index }, warn: options.warn,
    });
    const mib = (span.allocatedBytes / 2 ** 20).toFixed(1);
    return { span, runtime: choice.runtime, detail: `${choice.detail}; ${mib} MiB of weights on the device; in a worker thread` };
  }
  setStageThreads(threads);
  return { span: new WasmSpan(loadStage({ path, start, end, maxContext })), runtime: "wasm", detail: choice.detail };
}
