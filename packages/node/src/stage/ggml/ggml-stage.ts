/**
 * A stage (layers [start, end) of a Llama-family GGUF file) computed by ggml's CPU backend through FFI. Same contract
 * as the WebAssembly `Stage` (../stage.ts): stage 0 takes token ids, other stages hidden states [n][n_embd]; the last
 * stage returns logits, others hidden states; one KV cache per request id. Graph and numerics: design.md here.
 */
import { TesseraError } from "@tessera/protocol";
import { ggmlTypeName, openGguf, type GgufFile } from "../gguf-reader.js";
import { readLlamaConfig, type LlamaConfig } from "../llama-config.js";
import { checkTensorShape } from "../llama-tensor-shapes.js";
import type { ForwardOptions, LoadStageOptions, PositionInput, TokenInput } from "../stage.js";
import { loadVector } from "../weights.js";
import { openGpuBackend } from "./ggml-gpu.js";
import { GGML, GGML_ROPE_TYPE_NORMAL, loadGgml, type GgmlLib, type Ptr } from "./ggml-lib.js";
import type { GpuSpanPlacement } from "./ggml-worker-messages.js";

export interface LoadGgmlStageOptions extends LoadStageOptions {
  /** Threads of the CPU backend's pool for each step (default 1). */
  threads?: number;
  /** The library folder and CPU variant to load (what a probe already chose; see loadGgml). Default: find and score them. */
  libDir?: string;
  cpuVariant?: string;
  /** Run on this GPU backend's device (its library in `gpu.dir`, the same release as libDir); default the CPU backend. */
  gpu?: GpuSpanPlacement;
  /** Rows computed per graph (default MICRO_BATCH; tests pass a small one to split short prompts). */
  microBatch?: number;
  /** The most bytes of attention scores a graph may take (default MAX_KQ_BYTES; tests pass a small one). */
  maxKqBytes?: number;
}

interface LayerTensors {
  attnNorm: Ptr;
  wq: Ptr;
  wk: Ptr;
  wv: Ptr;
  wo: Ptr;
  ffnNorm: Ptr;
  wGate: Ptr;
  wUp: Ptr;
  wDown: Ptr;
}

/** First capacity of a request's cache, in cells; it doubles when full. */
const FIRST_CAPACITY = 64;

/**
 * The cells a step's attention reads are rounded up to a multiple of this (at most the capacity; the cells past the
 * request's are masked), so one decode graph serves this many steps (design.md, "A step's graph is reused").
 */
const KV_PAD = 64;

/**
 * A forward's rows are computed this many at a time, each batch a graph over the same cache, as llama.cpp's
 * `n_ubatch` (default 512). The attention's kq is [n_kv, rows, n_head] F32, so a few-thousand-token prompt in one
 * graph would take gigabytes of compute buffer, outside the memory the node offers, and ggml_gallocr never gives its
 * buffer back; split, the buffer is bounded by this many rows (design.md, "Micro-batches").
 */
export const MICRO_BATCH = 512;

/**
 * The most bytes a graph's attention scores (kq, [n_kv, rows, n_head] F32) may take: where a micro-batch's rows at
 * the request's cache length would pass it, the graph takes fewer rows. Without it the compute buffer grew with the
 * context (512 MiB for a 32-head model at 8,192 cells, 8 GiB at 131,072) and ggml_gallocr kept it for the span's
 * life; with it the buffer is bounded whatever the context (design.md, "Micro-batches").
 */
export const MAX_KQ_BYTES = 128 * 2 ** 20;

/**
 * A built and allocated step graph, kept for the request's next steps: what it was built for, its input tensors and
 * host buffers for them, and its output. Valid while the cache is the same object and the compute buffer has not
 * moved (`generation`).
 */
interface StepGraph {
  ctx: Ptr;
  graph: Ptr;
  n: number;
  rows: number;
  nKvPad: number;
  generation: number;
  posT: Ptr;
  maskT: Ptr;
  inT: Ptr;
  /** The cache rows this step's K goes to (one per position), and the cells of the V cache (kv_dim per position). */
  kRowsT: Ptr;
  vCellsT: Ptr;
  outT: Ptr;
  mask: Float32Array;
  /** The I64 index inputs' host buffers, written through their low 32-bit words (little-endian; the high words stay 0). */
  kRows: Int32Array;
  vCells: Int32Array;
}

/**
 * The cells a row of the transposed V cache holds: KV_PAD more than the capacity, so the attention's V view (its rows'
 * first n_pad cells) is never the whole tensor. Where it was (the padded width at the capacity), ggml's Vulkan
 * `mul_mat` took its path for a contiguous F16 matrix and read past the end of the cache's buffer: Mesa's device
 * crashed in half the test runs (design.md, "A step's graph is reused").
 */
const vRowCells = (capacity: number): number => capacity + KV_PAD;

/** One layer's K and V cache tensors of `capacity` cells (F16, as llama.cpp's default cache). */
function newKvTensors(g: GgmlLib, ctx: Ptr, kvDim: number, capacity: number): { k: Ptr; v: Ptr } {
  return { k: g.newTensor2d(ctx, GGML.F16, kvDim, capacity), v: g.newTensor2d(ctx, GGML.F16, vRowCells(capacity), kvDim) };
}

/**
 * One request's F16 K and V tensors per layer, in their own backend buffer, zeroed (masked cells are read, and must
 * not be NaN). K is [kv_dim, cap], V is [vRow, kv_dim] (vRowCells). Holds the request's last step graph.
 */
class GgmlKvCache {
  readonly ctx: Ptr;
  readonly buffer: Ptr;
  readonly k: Ptr[] = [];
  readonly v: Ptr[] = [];
  readonly vRow: number;
  length = 0;
  positions: Int32Array;
  step: StepGraph | undefined;

  constructor(private readonly g: GgmlLib, backend: Ptr, readonly nLayer: number, readonly kvDim: number, readonly capacity: number) {
    this.vRow = vRowCells(capacity);
    this.ctx = g.init(g.tensorOverhead() * (2 * nLayer + 2), true);
    for (let l = 0; l < nLayer; l++) {
      const { k, v } = newKvTensors(g, this.ctx, kvDim, capacity);
      this.k.push(k);
      this.v.push(v);
    }
    this.buffer = g.allocCtxTensors(this.ctx, backend);
    if (!this.buffer) {
      g.free(this.ctx);
      throw new TesseraError("no_capacity", `cannot allocate a KV cache of ${capacity} cells (${(2 * nLayer * kvDim * (capacity + vRowCells(capacity))) >> 20} MiB)`);
    }
    g.bufferClear(this.buffer, 0);
    this.positions = new Int32Array(capacity);
  }

  /** Frees the kept step graph (its tensors' data is in the stage's compute buffer, not here). */
  dropStep(): void {
    if (this.step) this.g.free(this.step.ctx);
    this.step = undefined;
  }

  /** A cache of `capacity` cells holding this one's cells (copied through host memory; growth is by doubling). */
  grown(backend: Ptr, capacity: number): GgmlKvCache {
    const g = this.g;
    const next = new GgmlKvCache(g, backend, this.nLayer, this.kvDim, capacity);
    const kBytes = this.kvDim * this.length * 2;
    const tmp = Buffer.allocUnsafe(Math.max(kBytes, this.length * 2));
    for (let l = 0; l < this.nLayer; l++) {
      if (kBytes > 0) {
        g.tensorGet(this.k[l], tmp, 0, kBytes);
        g.tensorSet(next.k[l], tmp, 0, kBytes);
      }
      for (let r = 0; r < this.kvDim && this.length > 0; r++) {
        g.tensorGet(this.v[l], tmp, r * this.vRow * 2, this.length * 2);
        g.tensorSet(next.v[l], tmp, r * next.vRow * 2, this.length * 2);
      }
    }
    next.positions.set(this.positions.subarray(0, this.length));
    next.length = this.length;
    return next;
  }

  release(): void {
    this.dropStep();
    this.g.bufferFree(this.buffer);
    this.g.free(this.ctx);
  }
}

export class GgmlStage {
  readonly isFirst: boolean;
  readonly isLast: boolean;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  /** The CPU backend library this span runs on (e.g. libggml-cpu-haswell.so). */
  readonly cpuVariant: string;
  /** The folder the ggml libraries were loaded from. */
  readonly libDir: string;
  /** ggml_backend_name of the backend (CPU, Vulkan0, CUDA0, ...), and the weight buffer's allocated size. */
  readonly backendName: string;
  readonly allocatedBytes: number;
  /** Batch shapes (single row, several rows) whose graph the device was checked to support (GPU backends). */
  private readonly opsChecked = [false, false];
  /** Step graphs built so far; a step that reuses its request's graph builds none (design.md, "A step's graph is reused"). */
  stepGraphsBuilt = 0;
  /** Wall time spent in ggml_backend_graph_compute so far, in ms: the rest of a step's time is the host's (inputs, graphs). */
  graphComputeMs = 0;
  private readonly caches = new Map<string, GgmlKvCache>();
  private readonly galloc: Ptr;
  /** The compute buffer's size, and a count bumped each time it grew (every step graph allocated before is stale). */
  private gallocBytes = 0;
  private gallocGeneration = 0;
  private readonly graphSize: number;
  private out = new Float32Array(0);
  private closed = false;

  constructor(
    private readonly g: GgmlLib,
    private readonly backend: Ptr,
    private readonly weightCtx: Ptr,
    private readonly weightBuffer: Ptr,
    readonly config: LlamaConfig,
    readonly start: number,
    readonly end: number,
    private readonly layers: LayerTensors[],
    private readonly tokenEmbd: Ptr | undefined,
    private readonly outputNorm: Ptr | undefined,
    private readonly output: Ptr | undefined,
    private readonly ropeFreqs: Ptr | undefined,
    readonly maxContext: number,
    readonly loadedTensors: readonly string[],
    readonly loadedBytes: number,
    private readonly onDevice: string | undefined,
    private readonly microBatch: number,
    private readonly maxKqBytes: number,
  ) {
    this.isFirst = start === 0;
    this.isLast = end === config.nLayer;
    this.hiddenSize = config.nEmbd;
    this.vocabSize = config.nVocab;
    this.cpuVariant = g.cpuVariant;
    this.libDir = g.dir;
    this.backendName = g.backendName(backend);
    this.allocatedBytes = g.bufferSize(weightBuffer);
    if (!onDevice) this.opsChecked.fill(true);
    this.galloc = g.gallocrNew(g.backendDefaultBufferType(backend));
    this.graphSize = 64 * layers.length + 64;
  }

  /** The compute buffer's size (ggml_gallocr's, shared by the span's steps; it only grows). */
  get computeBufferBytes(): number {
    return this.gallocBytes;
  }

  cachedTokens(requestId: string): number {
    return this.caches.get(requestId)?.length ?? 0;
  }

  dropRequest(requestId: string): boolean {
    const cache = this.caches.get(requestId);
    if (!cache) return false;
    cache.release();
    return this.caches.delete(requestId);
  }

  get activeRequests(): number {
    return this.caches.size;
  }

  /** Frees the weights, every cache and the backend. The stage cannot be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.caches.keys()]) this.dropRequest(id);
    this.g.gallocrFree(this.galloc);
    this.g.bufferFree(this.weightBuffer);
    this.g.free(this.weightCtx);
    this.g.backendFree(this.backend);
  }

  /**
   * As Stage.forward: the returned array is the stage's own buffer, valid until the next call. With `into`, ggml
   * writes the output there instead (the worker's shared I/O buffer, ggml-worker.ts) and the result is a view of it;
   * `into` must hold the output (rows x width values). The rows are computed `microBatch` at a time over the
   * request's cache (MICRO_BATCH); a call that fails leaves the request's cache as it was.
   */
  forward(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options: ForwardOptions = {}, into?: Float32Array): Float32Array {
    if (this.closed) throw new TesseraError("internal_error", "ggml stage used after close()");
    const c = this.config;
    const g = this.g;
    const n = positions.length;
    if (n === 0) throw new TesseraError("bad_request", "forward() needs at least one position");
    let ids: Int32Array | undefined;
    if (this.isFirst) {
      if (input instanceof Float32Array) throw new TesseraError("bad_request", "stage 0 takes token ids, not hidden states");
      if (input.length !== n) throw new TesseraError("bad_request", `got ${input.length} tokens for ${n} positions`);
      ids = new Int32Array(n);
      for (let t = 0; t < n; t++) {
        const id = input[t];
        if (!Number.isInteger(id) || id < 0 || id >= c.nVocab) throw new TesseraError("bad_request", `token id ${id} is outside the vocabulary (0..${c.nVocab - 1})`);
        ids[t] = id;
      }
    } else {
      if (!(input instanceof Float32Array)) throw new TesseraError("bad_request", `stage starting at layer ${this.start} takes hidden states (Float32Array), not token ids`);
      if (input.length !== n * c.nEmbd) throw new TesseraError("bad_request", `hidden states have ${input.length} values, expected ${n} x ${c.nEmbd}`);
    }
    const pos = new Int32Array(n);
    for (let t = 0; t < n; t++) {
      const p = positions[t];
      if (!Number.isInteger(p) || p < 0) throw new TesseraError("bad_request", `position ${p} is not a non-negative integer`);
      pos[t] = p;
    }
    let cache = this.caches.get(requestId);
    const held = cache?.length ?? 0;
    if (held + n > this.maxContext) {
      throw new TesseraError("bad_request", `request ${requestId} would hold ${held + n} tokens, more than the context of ${this.maxContext}`);
    }
    const kvDim = c.nHeadKv * c.headDim;
    const created = !cache;
    if (!cache || cache.length + n > cache.capacity) {
      let cap = cache?.capacity ?? Math.min(FIRST_CAPACITY, this.maxContext);
      while (cap < held + n) cap *= 2;
      cap = Math.min(cap, Math.max(this.maxContext, held + n));
      const next = cache ? cache.grown(this.backend, cap) : new GgmlKvCache(g, this.backend, this.layers.length, kvDim, cap);
      cache?.release();
      cache = next;
      this.caches.set(requestId, cache);
    }
    const allRows = !this.isLast || options.logits === "all";
    const width = this.isLast ? c.nVocab : c.nEmbd;
    const rows = allRows ? n : 1;
    const inWidth = this.isFirst ? 1 : c.nEmbd;
    const rowsIn = ids ?? (input as Float32Array);
    try {
      if (into && into.length < rows * width) throw new TesseraError("internal_error", `the output buffer holds ${into.length} values, the step writes ${rows * width}`);
      if (!into && this.out.length < rows * width) this.out = new Float32Array(rows * width);
      const result = (into ?? this.out).subarray(0, rows * width);
      // With logits "last" every micro-batch writes its last row's logits to the result, and the final one's stay.
      for (let from = 0; from < n; ) {
        const to = from + this.graphRows(cache, n - from);
        const out = allRows ? result.subarray(from * width, to * width) : result;
        this.computeStep(cache, rowsIn.subarray(from * inWidth, to * inWidth), pos.subarray(from, to), out);
        from = to;
      }
      return result;
    } catch (err) {
      // A failed call changes nothing: a request whose first step failed holds no cache (it would stay with no tokens,
      // which the worker reports as no request), and one that held tokens holds those alone.
      if (created) this.dropRequest(requestId);
      else cache.length = held;
      throw err;
    }
  }

  /**
   * The rows of the next graph over the cache, of `remaining`: the micro-batch, or fewer where their attention scores
   * (kq: the padded cells they attend to x rows x heads, F32) would pass maxKqBytes; at least one.
   */
  private graphRows(cache: GgmlKvCache, remaining: number): number {
    const rows = Math.min(remaining, this.microBatch);
    const cells = Math.min(cache.capacity, Math.ceil((cache.length + rows) / KV_PAD) * KV_PAD);
    return Math.max(1, Math.min(rows, Math.floor(this.maxKqBytes / (cells * this.config.nHead * 4))));
  }

  /**
   * Computes `pos.length` rows over the request's cache, which has room for them, and appends them to it; `out` gets
   * the output rows (its length: the rows, every row's or the last one's, times the width).
   */
  private computeStep(cache: GgmlKvCache, input: Int32Array | Float32Array, pos: Int32Array, out: Float32Array): void {
    const c = this.config;
    const g = this.g;
    const n = pos.length;
    const kvDim = c.nHeadKv * c.headDim;
    cache.positions.set(pos, cache.length);
    const nKv = cache.length + n;
    const nKvPad = Math.min(cache.capacity, Math.ceil(nKv / KV_PAD) * KV_PAD);
    const rows = out.length / (this.isLast ? c.nVocab : c.nEmbd);

    let step = cache.step;
    if (!step || step.n !== n || step.rows !== rows || step.nKvPad !== nKvPad || step.generation !== this.gallocGeneration) {
      cache.dropStep();
      step = this.buildStep(cache, n, rows, nKvPad);
      cache.step = step;
    }
    const { mask, kRows, vCells } = step;
    mask.fill(-Infinity);
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < nKv; j++) if (cache.positions[j] <= pos[t]) mask[t * nKvPad + j] = 0;
      const cell = cache.length + t;
      kRows[2 * t] = cell;
      for (let i = 0; i < kvDim; i++) vCells[2 * (t * kvDim + i)] = i * cache.vRow + cell;
    }
    g.tensorSet(step.posT, pos, 0, pos.byteLength);
    g.tensorSet(step.maskT, mask, 0, mask.byteLength);
    g.tensorSet(step.kRowsT, kRows, 0, kRows.byteLength);
    g.tensorSet(step.vCellsT, vCells, 0, vCells.byteLength);
    g.tensorSet(step.inT, input, 0, input.byteLength);
    const computeStarted = performance.now();
    const status = g.graphCompute(this.backend, step.graph);
    this.graphComputeMs += performance.now() - computeStarted;
    if (status !== 0) throw new TesseraError("internal_error", `ggml graph compute failed (status ${status})`);
    g.tensorGet(step.outT, out, 0, out.byteLength);
    cache.length += n;
  }

  /**
   * Builds and allocates the graph of a step of `n` positions over the cache's first `nKvPad` cells, returning `rows`
   * output rows. Everything that changes from step to step (positions, mask, the cache cells written, the input) is
   * an input tensor, so the graph serves every later step of the same shape.
   */
  private buildStep(cache: GgmlKvCache, n: number, rows: number, nKvPad: number): StepGraph {
    const c = this.config;
    const g = this.g;
    const kvDim = c.nHeadKv * c.headDim;
    const ctx = g.init(g.tensorOverhead() * this.graphSize * 2 + g.graphOverheadCustom(this.graphSize, false), true);
    try {
      const graph = g.newGraphCustom(ctx, this.graphSize, false);
      const input = (t: Ptr): Ptr => {
        g.setInput(t);
        return t;
      };
      const posT = input(g.newTensor1d(ctx, GGML.I32, n));
      const maskT = input(g.newTensor2d(ctx, GGML.F32, nKvPad, n));
      const kRowsT = input(g.newTensor1d(ctx, GGML.I64, n));
      const vCellsT = input(g.newTensor1d(ctx, GGML.I64, n * kvDim));
      const inT = input(this.isFirst ? g.newTensor1d(ctx, GGML.I32, n) : g.newTensor2d(ctx, GGML.F32, c.nEmbd, n));
      let x = this.isFirst ? g.getRows(ctx, this.tokenEmbd, inT) : inT;
      for (let li = 0; li < this.layers.length; li++) x = this.layer(ctx, graph, li, cache, x, n, nKvPad, { posT, maskT, kRowsT, vCellsT });
      let outT = x;
      if (this.isLast) {
        if (rows < n) outT = g.view2d(ctx, x, c.nEmbd, rows, c.nEmbd * 4, (n - rows) * c.nEmbd * 4);
        outT = g.mul(ctx, g.rmsNorm(ctx, outT, c.rmsEps), this.outputNorm);
        outT = g.mulMat(ctx, this.output, outT);
      }
      g.setOutput(outT);
      g.buildForwardExpand(graph, outT);
      if (!this.opsChecked[n > 1 ? 1 : 0]) {
        this.checkOps(graph);
        this.opsChecked[n > 1 ? 1 : 0] = true;
      }
      if (!g.gallocrAllocGraph(this.galloc, graph)) throw new TesseraError("no_capacity", "cannot allocate the ggml compute buffer for this step");
      const bytes = g.gallocrGetBufferSize(this.galloc, 0);
      if (bytes !== this.gallocBytes) {
        this.gallocBytes = bytes;
        this.gallocGeneration++;
      }
      this.stepGraphsBuilt++;
      return {
        ctx, graph, n, rows, nKvPad, generation: this.gallocGeneration, posT, maskT, inT, kRowsT, vCellsT, outT,
        mask: new Float32Array(nKvPad * n), kRows: new Int32Array(2 * n), vCells: new Int32Array(2 * n * kvDim),
      };
    } catch (err) {
      g.free(ctx);
      throw err;
    }
  }

  /**
   * A GPU backend computes only the ops it supports (there is no CPU fallback: the span is placed whole on the
   * device), so the first graph of each batch shape is checked op by op and an unsupported one is refused by name.
   */
  private checkOps(graph: Ptr): void {
    const g = this.g;
    const count = g.graphNNodes(graph);
    for (let i = 0; i < count; i++) {
      const node = g.graphNode(graph, i);
      if (!g.backendSupportsOp(this.backend, node)) {
        throw new TesseraError("unsupported_parameter", `the ${this.onDevice} device (${this.backendName}) does not support ggml op ${g.opDesc(node)} of this span's graph; stage_backend = ggml-cpu or wasm runs it`);
      }
    }
  }

  /** One Llama layer (design.md): writes this step's K and V into the cache before attention reads it. */
  private layer(ctx: Ptr, graph: Ptr, li: number, cache: GgmlKvCache, x: Ptr, n: number, nKvPad: number, inputs: { posT: Ptr; maskT: Ptr; kRowsT: Ptr; vCellsT: Ptr }): Ptr {
    const g = this.g;
    const c = this.config;
    const w = this.layers[li];
    const hd = c.headDim;
    const kvDim = c.nHeadKv * hd;
    const rope = (t: Ptr): Ptr => g.ropeExt(ctx, t, inputs.posT, this.ropeFreqs ?? null, c.nRot, GGML_ROPE_TYPE_NORMAL, 0, c.ropeFreqBase, c.ropeFreqScale, 0, 1, 32, 1);

    const cur = g.mul(ctx, g.rmsNorm(ctx, x, c.rmsEps), w.attnNorm);
    const q = rope(g.reshape3d(ctx, g.mulMat(ctx, w.wq, cur), hd, c.nHead, n));
    const k = rope(g.reshape3d(ctx, g.mulMat(ctx, w.wk, cur), hd, c.nHeadKv, n));
    const v = g.mulMat(ctx, w.wv, cur);
    // Into the cache at the cells the inputs name: K row by row; V, stored transposed, value by value (each of the
    // cache's values a one-element row). Expanded first, so they run before the attention below reads the cache.
    g.buildForwardExpand(graph, g.setRows(ctx, cache.k[li], g.reshape2d(ctx, k, kvDim, n), inputs.kRowsT));
    g.buildForwardExpand(graph, g.setRows(ctx, g.reshape2d(ctx, cache.v[li], 1, cache.vRow * kvDim), g.reshape2d(ctx, v, 1, kvDim * n), inputs.vCellsT));

    const kView = g.view3d(ctx, cache.k[li], hd, nKvPad, c.nHeadKv, kvDim * 2, hd * 2, 0);
    const vView = g.view3d(ctx, cache.v[li], nKvPad, hd, c.nHeadKv, cache.vRow * 2, cache.vRow * 2 * hd, 0);
    const kq = g.softMaxExt(ctx, g.mulMat(ctx, kView, g.permute(ctx, q, 0, 2, 1, 3)), inputs.maskT, 1 / Math.sqrt(hd), 0);
    const kqv = g.permute(ctx, g.mulMat(ctx, vView, kq), 0, 2, 1, 3);
    const attn = g.mulMat(ctx, w.wo, g.cont2d(ctx, kqv, hd * c.nHead, n));
    const h = g.add(ctx, x, attn);

    const ffIn = g.mul(ctx, g.rmsNorm(ctx, h, c.rmsEps), w.ffnNorm);
    const ff = g.mulMat(ctx, w.wDown, g.swigluSplit(ctx, g.mulMat(ctx, w.wGate, ffIn), g.mulMat(ctx, w.wUp, ffIn)));
    return g.add(ctx, h, ff);
  }
}

/** ggml types a span's matrices may have (uploaded as the file's bytes); the ones the tests run. */
const MATRIX_TYPES: ReadonlySet<number> = new Set([GGML.F32, GGML.F16, GGML.BF16, GGML.Q8_0, GGML.Q4_K, GGML.Q6_K]);

/** The tensors of one Llama layer, `blk.<l>.<name>.weight`. */
const LAYER_TENSORS = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"] as const;

/**
 * The ggml tensor a span holds for a file's tensor (no data yet): a vector as F32 (norm weights and rope factors, for
 * ggml_mul / ggml_rope_ext), a matrix in the file's own type. Its shape is checked against the config first: ggml
 * asserts shapes, and a failed assertion aborts the process.
 */
function newWeightTensor(g: GgmlLib, ctx: Ptr, file: GgufFile, name: string, config: LlamaConfig): Ptr {
  const info = file.tensors.get(name);
  if (!info) throw new TesseraError("bad_request", `${file.path}: tensor ${name} is missing`);
  checkTensorShape(file, name, config);
  if (info.dims.length === 1) return g.newTensor1d(ctx, GGML.F32, info.elementCount);
  if (!MATRIX_TYPES.has(info.type) || info.dims.length !== 2) {
    throw new TesseraError("bad_request", `tensor ${name}: ${ggmlTypeName(info.type)} with ${info.dims.length} dims is not supported by the ggml span (2-D F32, F16, BF16, Q8_0, Q4_K, Q6_K are)`);
  }
  return g.newTensor2d(ctx, info.type, info.dims[0], info.dims[1]);
}

/** What a span of a file takes in a ggml buffer type, per layer, before anything is loaded. */
export interface GgmlSpanBytes {
  /** Each layer's weights as `ggml_backend_alloc_ctx_tensors` places them in that buffer type. */
  layerWeights: number[];
  /** One layer's K and V cache for one request holding `context` tokens (the cache's capacity at its largest). */
  kvPerLayer: number;
  context: number;
}

/**
 * The bytes a span's layers take in the buffer type `buft` (the CPU's, or a GPU device's), computed the way
 * `ggml_backend_alloc_ctx_tensors_from_buft` (ggml-alloc.c) sizes its buffer: each tensor's
 * `ggml_backend_buft_get_alloc_size` (a backend may pad rows: CUDA pads quantised rows) rounded up to the buffer
 * type's alignment, summed. The tensors are the ones loadGgmlStage makes, in a context that allocates nothing.
 */
export function ggmlSpanBytes(g: GgmlLib, buft: Ptr, path: string, maxContext?: number): GgmlSpanBytes {
  const file = openGguf(path);
  try {
    const config = readLlamaConfig(file);
    const context = maxContext ?? config.contextLength;
    const align = g.buftGetAlignment(buft);
    const size = (t: Ptr) => Math.ceil(g.buftGetAllocSize(buft, t) / align) * align;
    // One context of headers (it allocates no data) per layer, so it stays small whatever the layer count.
    const withContext = <T>(tensors: number, use: (ctx: Ptr) => T): T => {
      const ctx = g.init(g.tensorOverhead() * (tensors + 1), true);
      try {
        return use(ctx);
      } finally {
        g.free(ctx);
      }
    };
    const layerWeights: number[] = [];
    for (let l = 0; l < config.nLayer; l++) {
      layerWeights.push(withContext(LAYER_TENSORS.length, (ctx) => {
        let bytes = 0;
        for (const t of LAYER_TENSORS) {
          bytes += size(newWeightTensor(g, ctx, file, `blk.${l}.${t}.weight`, config));
        }
        return bytes;
      }));
    }
    const kvPerLayer = withContext(2, (ctx) => {
      const { k, v } = newKvTensors(g, ctx, config.nHeadKv * config.headDim, context);
      return size(k) + size(v);
    });
    return { layerWeights, kvPerLayer, context };
  } finally {
    file.close();
  }
}

/**
 * The backend a span runs on, made once the libraries are loaded: ggml's CPU backend, or a device's backend
 * (`ggml_backend_dev_init`) with the name the span's errors use for it.
 */
export type MakeBackend = (g: GgmlLib) => { backend: Ptr; device?: string };

/**
 * Loads layers [start, end) (plus the embedding on stage 0 and the head on the last stage) into a buffer of the CPU
 * backend, or of the GPU device `options.gpu` names.
 */
export function loadGgmlStage(options: LoadGgmlStageOptions): GgmlStage {
  const makeBackend: MakeBackend = (g) => {
    if (options.gpu) {
      const { kind, dir, device } = options.gpu;
      const backend = g.devInit(openGpuBackend(g, kind, dir).device(device), null);
      if (!backend) throw new TesseraError("unsupported_parameter", `the ${kind} device ${device} did not initialise`);
      return { backend, device: kind };
    }
    const backend = g.backendCpuInit();
    if (!backend) throw new TesseraError("internal_error", `ggml's CPU backend (${g.cpuVariant}) did not initialise`);
    g.backendCpuSetNThreads(backend, Math.max(1, options.threads ?? 1));
    return { backend };
  };
  return loadGgmlStageOn(options, makeBackend);
}

/** As loadGgmlStage, on the backend `makeBackend` makes (a seam: the tests run the device path on ggml's CPU device). */
export function loadGgmlStageOn(options: LoadGgmlStageOptions, makeBackend: MakeBackend): GgmlStage {
  const file = openGguf(options.path);
  try {
    return build(file, options, makeBackend);
  } finally {
    file.close();
  }
}

function build(file: GgufFile, options: LoadGgmlStageOptions, makeBackend: MakeBackend): GgmlStage {
  const config = readLlamaConfig(file);
  const { start, end } = options;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > config.nLayer || start >= end) {
    throw new TesseraError("bad_request", `layer range [${start}, ${end}) is not within [0, ${config.nLayer}) or is empty`);
  }
  const microBatch = options.microBatch ?? MICRO_BATCH;
  if (!Number.isInteger(microBatch) || microBatch < 1) throw new TesseraError("bad_request", `micro-batch ${microBatch} is not a positive integer`);
  const maxKqBytes = options.maxKqBytes ?? MAX_KQ_BYTES;
  if (!Number.isInteger(maxKqBytes) || maxKqBytes < 1) throw new TesseraError("bad_request", `the attention's byte bound ${maxKqBytes} is not a positive integer`);
  const g = loadGgml(options.libDir, options.cpuVariant);
  const isFirst = start === 0;
  const isLast = end === config.nLayer;
  const tied = !file.tensors.has("output.weight");
  const names: string[] = [];
  for (let l = start; l < end; l++) {
    for (const t of LAYER_TENSORS) names.push(`blk.${l}.${t}.weight`);
  }
  if (isFirst || (isLast && tied)) names.push("token_embd.weight");
  if (isLast) names.push("output_norm.weight");
  if (isLast && !tied) names.push("output.weight");
  if (file.tensors.has("rope_freqs.weight")) names.push("rope_freqs.weight");

  const { backend, device: onDevice } = makeBackend(g);
  const ctx = g.init(g.tensorOverhead() * (names.length + 1), true);
  const tensors = new Map<string, Ptr>();
  const uploads: { tensor: Ptr; data: Uint8Array | Float32Array }[] = [];
  let loadedBytes = 0;
  let buffer: Ptr | undefined;
  try {
    for (const name of names) {
      const tensor = newWeightTensor(g, ctx, file, name, config);
      const info = file.tensors.get(name)!;
      const bytes = file.readTensor(name);
      loadedBytes += bytes.length;
      uploads.push({ tensor, data: info.dims.length === 1 ? loadVector(bytes, info) : bytes });
      tensors.set(name, tensor);
    }
    buffer = g.allocCtxTensors(ctx, backend);
    if (!buffer) throw new TesseraError("no_capacity", `cannot allocate ${loadedBytes} bytes of weights for layers [${start}, ${end})${onDevice ? ` on the ${onDevice} device` : ""}`);
    for (const u of uploads) {
      const size = g.nbytes(u.tensor);
      if (size !== u.data.byteLength) throw new TesseraError("internal_error", `ggml expects ${size} bytes for a tensor, the file has ${u.data.byteLength}`);
      g.tensorSet(u.tensor, u.data, 0, size);
    }
  } catch (err) {
    if (buffer) g.bufferFree(buffer);
    g.free(ctx);
    g.backendFree(backend);
    throw err;
  }
  const layers: LayerTensors[] = [];
  for (let l = start; l < end; l++) {
    const t = (s: (typeof LAYER_TENSORS)[number]): Ptr => tensors.get(`blk.${l}.${s}.weight`);
    layers.push({ attnNorm: t("attn_norm"), wq: t("attn_q"), wk: t("attn_k"), wv: t("attn_v"), wo: t("attn_output"), ffnNorm: t("ffn_norm"), wGate: t("ffn_gate"), wUp: t("ffn_up"), wDown: t("ffn_down") });
  }
  const embd = tensors.get("token_embd.weight");
  return new GgmlStage(
    g, backend, ctx, buffer, config, start, end, layers,
    isFirst ? embd : undefined,
    isLast ? tensors.get("output_norm.weight") : undefined,
    isLast ? (tied ? embd : tensors.get("output.weight")) : undefined,
    tensors.get("rope_freqs.weight"),
    options.maxContext ?? config.contextLength,
    names,
    loadedBytes,
    onDevice,
    microBatch,
    maxKqBytes,
  );
}
