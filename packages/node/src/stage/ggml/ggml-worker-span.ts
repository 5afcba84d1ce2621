/**
 * A ggml span held in its own worker thread (ggml-worker.ts), seen from the thread that uses it: the same
 * forward / dropRequest / cachedTokens contract as the in-thread GgmlStage, with `forward` answering a promise, so
 * the caller's event loop keeps running (session pings, heartbeats, other jobs) while ggml computes. design.md here,
 * "Threading", says why one worker per span.
 *
 * Contract:
 * - Calls run one at a time in the order they were made (forwards and drops alike); `forward`'s input must not
 *   change until its promise settles. The answer is a view of the span's shared I/O buffer, valid until the next
 *   forward on this span starts (as Stage.forward's answer is valid until the next call), except when another forward
 *   was already waiting as it finished: that one starts before the answer's reader runs, and the worker thread would
 *   write its output over the answer, so such an answer is a copy.
 * - A call that fails in the worker rejects with the worker's TesseraError code and message (bad input stays
 *   `bad_request`). A worker that dies (an uncaught error, an unexpected exit) fails the call in flight and every
 *   later one with `internal_error` naming the span; the process is unaffected (a crash inside native code is not
 *   caught by this: it ends the process, as it would on the main thread).
 * - The worker keeps the process alive only while a call is in flight or the span is loading; `close()` lets the call
 *   in flight finish, then frees the span's ggml memory in the worker and ends the thread (terminating it, with a
 *   warning that the memory stays allocated, if it does not end within a few seconds of that).
 */
import type { Worker } from "node:worker_threads";
import { TesseraError } from "@tessera/protocol";
import type { ForwardOptions, PositionInput, TokenInput } from "../stage.js";
import { startWorker } from "../worker-start.js";
import type { GgmlSpanInfo, GgmlWorkerData, GpuSpanPlacement, HolderMessage, WorkerMessage } from "./ggml-worker-messages.js";

export interface LoadGgmlWorkerSpanOptions {
  path: string;
  start: number;
  end: number;
  maxContext?: number;
  /** Threads of the CPU backend's pool (default 1). */
  threads?: number;
  /** The library folder and CPU variant the worker loads (what the caller's probe chose); default: it finds them. */
  libDir?: string;
  cpuVariant?: string;
  /** Run on this GPU backend and device instead of the CPU backend. */
  gpu?: GpuSpanPlacement;
  /** Rows computed per graph (GgmlStage's micro-batch; default MICRO_BATCH). */
  microBatch?: number;
  /**
   * How long close() waits for the worker to free the span and end before terminating it (default 5 s), counted from
   * when the step in flight, if any, has answered (the worker frees the span only after it).
   */
  closeTimeoutMs?: number;
  /** Where close() reports a worker it terminated without the span freed (default: a process warning). */
  warn?: (message: string) => void;
}

const INT32_MAX = 2 ** 31 - 1;
const align8 = (bytes: number): number => (bytes + 7) & ~7;

interface InFlight {
  id: number;
  resolve(m: Extract<WorkerMessage, { type: "forwarded" }>): void;
  reject(err: TesseraError): void;
}

export class GgmlWorkerSpan {
  readonly isFirst: boolean;
  readonly isLast: boolean;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly maxContext: number;
  readonly loadedBytes: number;
  /** The weight buffer's size as the backend allocated it (on the device for a GPU span), and the backend's name. */
  readonly allocatedBytes: number;
  readonly backendName: string;
  /** The CPU backend library the span runs on (e.g. libggml-cpu-haswell.so) and the folder it came from. */
  readonly cpuVariant: string;
  readonly libDir: string;
  /** Resolves when the worker thread has ended (after close(), or when it died). */
  readonly exited: Promise<number>;
  /** Wall time the worker has spent computing steps, in ms, summed (a caller's time beyond it is the hand-off). */
  computeMs = 0;

  private io = new SharedArrayBuffer(0);
  private ioSent = true;
  /** Cached tokens per request, as the worker reported them after each call. */
  private readonly cached = new Map<string, number>();
  /** Forwards made and not settled, per request (so a drop of a request whose first call is queued counts). */
  private readonly queued = new Map<string, number>();
  /**
   * Requests the worker was sent a forward for and no drop since, whatever it answered: a drop of any of them reaches
   * the worker, which frees whatever the request holds there (a failed first call holds nothing, but the holder does
   * not rely on it).
   */
  private readonly forwarded = new Set<string>();
  private tail: Promise<unknown> = Promise.resolve();
  private inFlight: InFlight | undefined;
  /** Settles when the call in the worker, if any, has answered or the worker has died. */
  private inFlightDone: Promise<unknown> = Promise.resolve();
  private nextId = 0;
  private busy = 0;
  private failure: TesseraError | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    info: GgmlSpanInfo,
    readonly start: number,
    readonly end: number,
    exited: Promise<number>,
    private readonly closeTimeoutMs: number,
    private readonly warn: (message: string) => void,
  ) {
    this.isFirst = info.isFirst;
    this.isLast = info.isLast;
    this.hiddenSize = info.hiddenSize;
    this.vocabSize = info.vocabSize;
    this.maxContext = info.maxContext;
    this.loadedBytes = info.loadedBytes;
    this.allocatedBytes = info.allocatedBytes;
    this.backendName = info.backendName;
    this.cpuVariant = info.cpuVariant;
    this.libDir = info.libDir;
    this.exited = exited;
    worker.on("message", (m: WorkerMessage) => {
      if (m.type !== "forwarded") return;
      const call = this.inFlight;
      if (call?.id !== m.id) return;
      this.inFlight = undefined;
      call.resolve(m);
    });
    worker.on("error", (err) => this.fail(`failed: ${err.message}`));
    worker.on("messageerror", (err) => this.fail(`sent a message that cannot be read: ${err.message}`));
    void exited.then((code) => this.fail(`ended (exit code ${code})`));
  }

  /** Starts a worker and loads layers [start, end) in it; rejects with the load's own error (the worker then ends). */
  static load(options: LoadGgmlWorkerSpanOptions): Promise<GgmlWorkerSpan> {
    const { path, start, end, maxContext, libDir, cpuVariant, gpu, microBatch } = options;
    const data: GgmlWorkerData = { path, start, end, maxContext, threads: Math.max(1, options.threads ?? 1), libDir, cpuVariant, microBatch, ...(gpu ? { gpu } : {}) };
    const worker = startWorker("ggml-worker", import.meta.url, data);
    const exited = new Promise<number>((resolve) => worker.once("exit", resolve));
    const what = `the ggml span of layers [${start}, ${end})`;
    return new Promise<GgmlWorkerSpan>((resolve, reject) => {
      const failed = (err: TesseraError): void => {
        cleanup();
        void worker.terminate();
        reject(err);
      };
      const onMessage = (m: WorkerMessage): void => {
        if (m.type === "load-failed") return failed(new TesseraError(m.error.code, m.error.message));
        if (m.type !== "loaded") return;
        cleanup();
        worker.unref();
        resolve(new GgmlWorkerSpan(worker, m.info, start, end, exited, options.closeTimeoutMs ?? 5000, options.warn ?? ((message) => process.emitWarning(message))));
      };
      const onError = (err: Error): void => failed(new TesseraError("internal_error", `${what} did not load: its worker failed: ${err.message}`));
      const onExit = (code: number): void => failed(new TesseraError("internal_error", `${what} did not load: its worker ended (exit code ${code})`));
      const cleanup = (): void => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      worker.on("message", onMessage);
      worker.once("error", onError);
      worker.once("exit", onExit);
    });
  }

  cachedTokens(requestId: string): number {
    return this.cached.get(requestId) ?? 0;
  }

  get activeRequests(): number {
    return this.cached.size;
  }

  /** As Stage.forward, answered when the worker has computed the step (see the contract above). */
  forward(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options: ForwardOptions = {}): Promise<Float32Array> {
    this.queued.set(requestId, (this.queued.get(requestId) ?? 0) + 1);
    this.hold();
    const run = (): Promise<Float32Array> => this.run(requestId, input, positions, options);
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => {});
    return result.finally(() => {
      const left = (this.queued.get(requestId) ?? 1) - 1;
      if (left > 0) this.queued.set(requestId, left);
      else this.queued.delete(requestId);
      this.release();
    });
  }

  /** Frees the request's cache (in order after the calls made before it); true when the span knew the request. */
  dropRequest(requestId: string): boolean {
    const known = this.cached.has(requestId) || this.queued.has(requestId) || this.forwarded.has(requestId);
    this.cached.delete(requestId);
    if (!known) return false;
    this.tail = this.tail.then(() => {
      this.cached.delete(requestId);
      this.forwarded.delete(requestId);
      if (!this.failure && !this.closing) this.post({ type: "drop", requestId });
    });
    return true;
  }

  /**
   * Frees the span's memory and ends its worker; calls made later fail. A step in flight is let finish first (the
   * worker reads the close after it): terminating the worker mid-step would leave the span's native memory
   * allocated for the process's life. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.inFlightDone;
      if (!this.failure) this.post({ type: "close" });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), this.closeTimeoutMs)));
      const ended = await Promise.race([this.exited, timedOut]);
      clearTimeout(timer);
      if (ended === "timeout") {
        this.warn(`the ggml span of layers [${this.start}, ${this.end}): its worker did not free the span and end within ${this.closeTimeoutMs} ms of close(), so it was terminated; its native memory (${this.allocatedBytes} bytes of weights, and its KV caches) stays allocated`);
        await this.worker.terminate();
      }
      this.cached.clear();
      this.forwarded.clear();
    })();
    return this.closing;
  }

  private async run(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options: ForwardOptions): Promise<Float32Array> {
    if (this.closing) throw new TesseraError("internal_error", `the ggml span of layers [${this.start}, ${this.end}) was used after close()`);
    if (this.failure) throw this.failure;
    const n = positions.length;
    const hidden = input instanceof Float32Array;
    const positionsOffset = align8(input.length * 4);
    const outputOffset = positionsOffset + align8(n * 4);
    const rows = this.isLast ? (options.logits === "all" ? n : 1) : n;
    const need = outputOffset + rows * (this.isLast ? this.vocabSize : this.hiddenSize) * 4;
    if (need > this.io.byteLength) {
      this.io = new SharedArrayBuffer(Math.max(need, 2 * this.io.byteLength));
      this.ioSent = false;
    }
    const io = this.io;
    if (hidden) new Float32Array(io, 0, input.length).set(input);
    else {
      const ids = new Int32Array(io, 0, input.length);
      for (let i = 0; i < input.length; i++) {
        const id = input[i]!;
        // An id that does not fit an i32 would wrap; the stage checks the rest against the vocabulary.
        if (!Number.isInteger(id) || id < 0 || id > INT32_MAX) throw new TesseraError("bad_request", `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
        ids[i] = id;
      }
    }
    const pos = new Int32Array(io, positionsOffset, n);
    for (let t = 0; t < n; t++) {
      const p = positions[t]!;
      if (!Number.isInteger(p) || p < 0 || p > INT32_MAX) throw new TesseraError("bad_request", `position ${p} is not a non-negative integer`);
      pos[t] = p;
    }
    const id = this.nextId++;
    const answered = new Promise<Extract<WorkerMessage, { type: "forwarded" }>>((resolve, reject) => {
      this.inFlight = { id, resolve, reject };
      this.forwarded.add(requestId);
      this.post({
        type: "forward", id, requestId, n, input: hidden ? "hidden" : "ids", inputLength: input.length, positionsOffset, outputOffset,
        logits: options.logits ?? "last", ...(this.ioSent ? {} : { io }),
      });
      this.ioSent = true;
    });
    this.inFlightDone = answered.catch(() => {});
    const answer = await answered;
    this.computeMs += answer.ms;
    if (answer.cached > 0) this.cached.set(requestId, answer.cached);
    else this.cached.delete(requestId);
    if (answer.error) throw new TesseraError(answer.error.code, answer.error.message);
    const view = new Float32Array(io, outputOffset, answer.length);
    // `busy` counts this call and every one made after it that has not settled.
    return this.busy > 1 ? view.slice() : view;
  }

  private post(m: HolderMessage): void {
    this.worker.postMessage(m);
  }

  /** The worker keeps the process alive only while calls are pending (an idle span never holds a process open). */
  private hold(): void {
    if (this.busy++ === 0 && !this.failure) this.worker.ref();
  }

  private release(): void {
    if (--this.busy === 0) this.worker.unref();
  }

  private fail(why: string): void {
    if (this.failure) return;
    const expected = this.closing !== undefined;
    this.failure = new TesseraError("internal_error", `the ggml span of layers [${this.start}, ${this.end}): its worker ${expected ? "was closed" : why}`);
    const call = this.inFlight;
    this.inFlight = undefined;
    call?.reject(this.failure);
  }
}
