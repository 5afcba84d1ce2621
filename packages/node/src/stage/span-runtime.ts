/**
 * Which runtime computes a layer span: the WebAssembly runtime (stage.ts) or ggml's CPU backend (ggml/). One entry
 * point, `loadSpan`, so a caller names a backend and gets a span with the same forward/dropRequest contract.
 *
 * `auto` takes ggml-cpu when its libraries load and its self-check passes (ggml/ggml-self-check.ts), else wasm, and
 * says why in `reason`. The check runs once per process.
 */
import { TesseraError } from "@tessera/protocol";
import type { GgmlLib } from "./ggml/ggml-lib.js";
import { loadGgml } from "./ggml/ggml-lib.js";
import { ggmlSelfCheck } from "./ggml/ggml-self-check.js";
import { loadGgmlStage } from "./ggml/ggml-stage.js";
import { loadStage, type ForwardOptions, type PositionInput, type TokenInput } from "./stage.js";
import { STAGE_BACKENDS, type StageBackend } from "./stage-backend.js";
import { setStageThreads } from "./wasm-matvec.js";

export { STAGE_BACKENDS, type StageBackend };
export type SpanRuntimeName = "wasm" | "ggml-cpu";

/** What both runtimes' spans offer (Stage and GgmlStage). */
export interface Span {
  readonly isFirst: boolean;
  readonly isLast: boolean;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly start: number;
  readonly end: number;
  readonly maxContext: number;
  readonly loadedBytes: number;
  forward(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options?: ForwardOptions): Float32Array;
  cachedTokens(requestId: string): number;
  dropRequest(requestId: string): boolean;
  readonly activeRequests: number;
  /** Frees what the span holds outside the JS heap (the ggml span's backend buffers); absent when nothing is. */
  close?(): void;
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
  /** For the log: the CPU variant ggml runs, or why auto fell back to wasm. */
  detail: string;
}

export function isStageBackend(value: string): value is StageBackend {
  return (STAGE_BACKENDS as readonly string[]).includes(value);
}

/** The seam tests swap: how the ggml libraries are loaded and checked. */
export interface GgmlProbe {
  load(): GgmlLib;
  check(g: GgmlLib): void;
}

const realProbe: GgmlProbe = { load: () => loadGgml(), check: ggmlSelfCheck };
let checked: { ok: true; lib: GgmlLib } | { ok: false; why: string } | undefined;

/** Whether ggml-cpu is usable here: its libraries load and its self-check passes (cached per process for the real probe). */
export function probeGgmlCpu(probe: GgmlProbe = realProbe): { ok: true; lib: GgmlLib } | { ok: false; why: string } {
  if (probe === realProbe && checked) return checked;
  let result: { ok: true; lib: GgmlLib } | { ok: false; why: string };
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

export function loadSpan(options: LoadSpanOptions, probe: GgmlProbe = realProbe): LoadedSpan {
  const { path, start, end, maxContext } = options;
  const threads = options.threads ?? 1;
  if (!isStageBackend(options.backend)) throw new TesseraError("bad_request", `stage backend ${String(options.backend)} is not one of ${STAGE_BACKENDS.join(", ")}`);
  let fallback = "";
  if (options.backend !== "wasm") {
    const ggml = probeGgmlCpu(probe);
    if (ggml.ok) {
      return { span: loadGgmlStage({ path, start, end, maxContext, threads }), runtime: "ggml-cpu", detail: ggml.lib.cpuVariant };
    }
    if (options.backend === "ggml-cpu") throw new TesseraError("internal_error", `stage backend ggml-cpu is not usable here: ${ggml.why}`);
    fallback = `ggml-cpu not usable: ${ggml.why}`;
  }
  setStageThreads(threads);
  return { span: loadStage({ path, start, end, maxContext }), runtime: "wasm", detail: fallback || "WebAssembly SIMD" };
}
