/**
 * Which runtime computes a layer span: the WebAssembly runtime (stage.ts) or ggml's CPU backend (ggml/). One entry
 * point, `loadSpan`, so a caller names a backend and gets a span with the same async forward/dropRequest contract.
 *
 * `auto` takes ggml-cpu when its libraries load and its self-check passes (ggml/ggml-self-check.ts), else wasm, and
 * says why in `detail`. The check runs once per process. A ggml span computes in its own worker thread
 * (ggml/ggml-worker-span.ts), so its forward does not block the caller's event loop; the WebAssembly span computes
 * on the calling thread, as before, behind the same promise-returning interface.
 */
import { TesseraError } from "@tessera/protocol";
import type { GgmlLib } from "./ggml/ggml-lib.js";
import { loadGgml } from "./ggml/ggml-lib.js";
import { ggmlSelfCheck } from "./ggml/ggml-self-check.js";
import { GgmlWorkerSpan, type LoadGgmlWorkerSpanOptions } from "./ggml/ggml-worker-span.js";
import { loadStage, type ForwardOptions, type PositionInput, type Stage, type TokenInput } from "./stage.js";
import { STAGE_BACKENDS, type StageBackend } from "./stage-backend.js";
import { setStageThreads } from "./wasm-matvec.js";

export { STAGE_BACKENDS, type StageBackend };
export type SpanRuntimeName = "wasm" | "ggml-cpu";

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

/** The seam tests swap: how the ggml libraries are loaded and checked, and how a ggml span is started. */
export interface GgmlProbe {
  load(): GgmlLib;
  check(g: GgmlLib): void;
  startSpan?(options: LoadGgmlWorkerSpanOptions): Promise<GgmlWorkerSpan>;
}

const realProbe: GgmlProbe = { load: () => loadGgml(), check: ggmlSelfCheck };
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

/** What `stage_backend` resolves to on this machine: the runtime spans get, or why none (ggml-cpu named but unusable). */
export type StageRuntimeChoice =
  | { runtime: SpanRuntimeName; detail: string; lib?: GgmlLib }
  | { runtime: undefined; detail: string };

/** The decision loadSpan makes, without loading a span: doctor prints it, loadSpan follows it. */
export function resolveStageRuntime(backend: StageBackend, probe: GgmlProbe = realProbe): StageRuntimeChoice {
  if (!isStageBackend(backend)) throw new TesseraError("bad_request", `stage backend ${String(backend)} is not one of ${STAGE_BACKENDS.join(", ")}`);
  if (backend === "wasm") return { runtime: "wasm", detail: "WebAssembly SIMD" };
  const ggml = probeGgmlCpu(probe);
  if (ggml.ok) return { runtime: "ggml-cpu", detail: `${describeGgml(ggml.lib)}; self-check passed`, lib: ggml.lib };
  if (backend === "ggml-cpu") return { runtime: undefined, detail: `stage backend ggml-cpu is not usable here: ${ggml.why}` };
  return { runtime: "wasm", detail: `ggml-cpu not usable: ${ggml.why}` };
}

export async function loadSpan(options: LoadSpanOptions, probe: GgmlProbe = realProbe): Promise<LoadedSpan> {
  const { path, start, end, maxContext } = options;
  const threads = options.threads ?? 1;
  const choice = resolveStageRuntime(options.backend, probe);
  if (choice.runtime === undefined) throw new TesseraError("internal_error", choice.detail);
  if (choice.runtime === "ggml-cpu") {
    const lib = choice.lib!;
    const span = await (probe.startSpan ?? GgmlWorkerSpan.load)({ path, start, end, maxContext, threads, libDir: lib.dir, cpuVariant: lib.cpuVariant });
    return { span, runtime: "ggml-cpu", detail: `${describeGgml({ cpuVariant: span.cpuVariant, version: lib.version, dir: span.libDir })}; in a worker thread, ${threads} thread(s)` };
  }
  setStageThreads(threads);
  return { span: new WasmSpan(loadStage({ path, start, end, maxContext })), runtime: "wasm", detail: choice.detail };
}
