/**
 * A stage: layers [start, end) of a Llama-family GGUF model, with a KV cache per request.
 * Stage 0 takes token ids and embeds them; any other stage takes the previous stage's hidden states. The last stage
 * returns logits; any other returns hidden states. Numerics follow llama.cpp's CPU path (see design.md).
 */
import { TesseraError } from "@tessera/protocol";
import { Attention } from "./attention.js";
import { openGguf, type GgufFile } from "./gguf-reader.js";
import { KvCache } from "./kv-cache.js";
import { readLlamaConfig, type LlamaConfig } from "./llama-config.js";
import { wasmArena, type WasmArena } from "./wasm-matvec.js";
import { getRow, loadMatrix, loadVector, matmul, matmulMany, MatmulScratch, type Matrix } from "./weights.js";

export interface LoadStageOptions {
  /** Path of the GGUF file. */
  path: string;
  /** First layer (inclusive). */
  start: number;
  /** Last layer (exclusive); `start < end <= block_count`. */
  end: number;
  /** Refuse requests longer than this many tokens (default: the model's context length). */
  maxContext?: number;
}

export interface ForwardOptions {
  /** Last stage only: logits of the last input row (default) or of every row. */
  logits?: "last" | "all";
}

interface LayerWeights {
  attnNorm: Float32Array;
  wq: Matrix;
  wk: Matrix;
  wv: Matrix;
  wo: Matrix;
  ffnNorm: Float32Array;
  wGate: Matrix;
  wUp: Matrix;
  wDown: Matrix;
  /** [wq, wk, wv] and [wGate, wUp]: the matrices sharing one input, built once (no per-token arrays). */
  qkv: Matrix[];
  gateUp: Matrix[];
}

export type TokenInput = Int32Array | Uint32Array | readonly number[];
export type PositionInput = Int32Array | readonly number[];

export class Stage {
  readonly isFirst: boolean;
  readonly isLast: boolean;
  /** Width of one input row of hidden state (n_embd); stage 0 takes token ids instead. */
  readonly hiddenSize: number;
  readonly vocabSize: number;
  private readonly caches = new Map<string, KvCache>();
  private readonly scratch = new MatmulScratch();
  private cap = 0;
  private x = new Float32Array(0);
  private xn = new Float32Array(0);
  private q = new Float32Array(0);
  private k = new Float32Array(0);
  private v = new Float32Array(0);
  private attn = new Float32Array(0);
  private tmp = new Float32Array(0);
  private gate = new Float32Array(0);
  private up = new Float32Array(0);
  private qkvOut: Float32Array[] = [];
  private gateUpOut: Float32Array[] = [];
  private logitsBuf = new Float32Array(0);
  private readonly views = new WeakMap<Float32Array, Float32Array>();
  /** The arena the KV caches live in (null: JS caches and attention, when WASM is unavailable or head_dim % 8 != 0). */
  private readonly kvArena: WasmArena | null;
  private readonly attention: Attention;
  private readonly ropeCos: Float32Array;
  private readonly ropeSin: Float32Array;
  private readonly thetaScale: number;

  constructor(
    readonly config: LlamaConfig,
    readonly start: number,
    readonly end: number,
    private readonly layers: LayerWeights[],
    private readonly tokenEmbd: Matrix | undefined,
    private readonly outputNorm: Float32Array | undefined,
    private readonly output: Matrix | undefined,
    private readonly ropeFreqs: Float32Array | undefined,
    readonly maxContext: number,
    /** Names of the tensors read from the file, and their total size in the file (for memory accounting). */
    readonly loadedTensors: readonly string[],
    readonly loadedBytes: number,
  ) {
    this.isFirst = start === 0;
    this.isLast = end === config.nLayer;
    this.hiddenSize = config.nEmbd;
    this.vocabSize = config.nVocab;
    this.kvArena = config.headDim % 8 === 0 ? wasmArena() : null;
    this.attention = new Attention(config, this.kvArena);
    this.ropeCos = new Float32Array(config.nRot / 2);
    this.ropeSin = new Float32Array(config.nRot / 2);
    // ggml: theta_scale = powf(freq_base, -2.0f/n_dims), computed in float.
    this.thetaScale = Math.fround(Math.pow(config.ropeFreqBase, Math.fround(-2 / config.nRot)));
  }

  /** Number of tokens cached for a request (0 when unknown). */
  cachedTokens(requestId: string): number {
    return this.caches.get(requestId)?.length ?? 0;
  }

  /** Forgets a request's KV cache; returns whether there was one. */
  dropRequest(requestId: string): boolean {
    const cache = this.caches.get(requestId);
    if (!cache) return false;
    cache.release();
    return this.caches.delete(requestId);
  }

  /** Number of requests holding a KV cache. */
  get activeRequests(): number {
    return this.caches.size;
  }

  private ensureCapacity(n: number): void {
    if (n <= this.cap) return;
    const c = this.config;
    const cap = Math.max(n, this.cap * 2);
    this.x = new Float32Array(cap * c.nEmbd);
    this.xn = new Float32Array(cap * c.nEmbd);
    this.tmp = new Float32Array(cap * c.nEmbd);
    this.q = new Float32Array(cap * c.nHead * c.headDim);
    this.attn = new Float32Array(cap * c.nHead * c.headDim);
    this.k = new Float32Array(cap * c.nHeadKv * c.headDim);
    this.v = new Float32Array(cap * c.nHeadKv * c.headDim);
    this.gate = new Float32Array(cap * c.nFf);
    this.up = new Float32Array(cap * c.nFf);
    this.qkvOut = [this.q, this.k, this.v];
    this.gateUpOut = [this.gate, this.up];
    this.cap = cap;
  }

  /**
   * Runs `n` input rows at the given positions through this stage's layers, appending them to the request's cache.
   * `input`: token ids (stage 0) or a Float32Array of n * hiddenSize (rows = tokens, row-major).
   * Returns hidden states [n][hiddenSize], or on the last stage logits [1 or n][vocabSize]. The returned array is a
   * view of the stage's own buffer, valid until the next forward() call: copy it to keep it.
   */
  forward(requestId: string, input: Float32Array | TokenInput, positions: PositionInput, options: ForwardOptions = {}): Float32Array {
    const c = this.config;
    const n = positions.length;
    if (n === 0) throw new TesseraError("bad_request", "forward() needs at least one position");
    this.ensureCapacity(n);
    const x = this.x;
    if (this.isFirst) {
      if (input instanceof Float32Array) throw new TesseraError("bad_request", "stage 0 takes token ids, not hidden states");
      if (input.length !== n) throw new TesseraError("bad_request", `got ${input.length} tokens for ${n} positions`);
      for (let t = 0; t < n; t++) {
        const id = input[t];
        if (!Number.isInteger(id) || id < 0 || id >= c.nVocab) throw new TesseraError("bad_request", `token id ${id} is outside the vocabulary (0..${c.nVocab - 1})`);
        getRow(this.tokenEmbd!, id, x, t * c.nEmbd);
      }
    } else {
      if (!(input instanceof Float32Array)) throw new TesseraError("bad_request", `stage starting at layer ${this.start} takes hidden states (Float32Array), not token ids`);
      if (input.length !== n * c.nEmbd) throw new TesseraError("bad_request", `hidden states have ${input.length} values, expected ${n} x ${c.nEmbd}`);
      x.set(input);
    }
    let cache = this.caches.get(requestId);
    if (!cache) {
      cache = new KvCache(this.layers.length, c.nHeadKv * c.headDim, this.kvArena);
      this.caches.set(requestId, cache);
    }
    if (cache.length + n > this.maxContext) {
      throw new TesseraError("bad_request", `request ${requestId} would hold ${cache.length + n} tokens, more than the context of ${this.maxContext}`);
    }
    for (let t = 0; t < n; t++) {
      const p = positions[t];
      if (!Number.isInteger(p) || p < 0) throw new TesseraError("bad_request", `position ${p} is not a non-negative integer`);
    }
    cache.reserve(n);
    for (let t = 0; t < n; t++) cache.positions[cache.length + t] = positions[t];

    for (let li = 0; li < this.layers.length; li++) this.layer(li, this.layers[li], cache, n, positions);
    cache.length += n;

    if (!this.isLast) return this.view(x, n * c.nEmbd);
    const rows = options.logits === "all" ? n : 1;
    const first = n - rows;
    rmsNorm(x, this.xn, first * c.nEmbd, rows, c.nEmbd, this.outputNorm!, c.rmsEps);
    if (this.logitsBuf.length < rows * c.nVocab) this.logitsBuf = new Float32Array(rows * c.nVocab);
    matmul(this.output!, first === 0 ? this.xn : this.xn.subarray(first * c.nEmbd), rows, this.logitsBuf, this.scratch);
    return this.view(this.logitsBuf, rows * c.nVocab);
  }

  /** buf[0, n) as a view reused while buf and n stay the same (decoding then allocates nothing per token). */
  private view(buf: Float32Array, n: number): Float32Array {
    let v = this.views.get(buf);
    if (!v || v.length !== n) {
      v = buf.subarray(0, n);
      this.views.set(buf, v);
    }
    return v;
  }

  private layer(li: number, w: LayerWeights, cache: KvCache, n: number, positions: PositionInput): void {
    const c = this.config;
    const { x, xn, q, k, v, attn, tmp, gate, up, scratch } = this;
    const hd = c.headDim;
    const qWidth = c.nHead * hd;
    const kvWidth = c.nHeadKv * hd;

    rmsNorm(x, xn, 0, n, c.nEmbd, w.attnNorm, c.rmsEps);
    matmulMany(w.qkv, xn, n, this.qkvOut, scratch);

    for (let t = 0; t < n; t++) {
      this.ropeAngles(positions[t]);
      for (let h = 0; h < c.nHead; h++) this.rope(q, t * qWidth + h * hd);
      for (let h = 0; h < c.nHeadKv; h++) this.rope(k, t * kvWidth + h * hd);
      cache.write(li, cache.length + t, k, t * kvWidth, v, t * kvWidth);
    }
    this.attention.run(li, q, n, positions, cache, cache.length + n, attn);

    matmul(w.wo, attn, n, tmp, scratch);
    for (let i = 0, m = n * c.nEmbd; i < m; i++) x[i] = Math.fround(x[i] + tmp[i]);

    rmsNorm(x, xn, 0, n, c.nEmbd, w.ffnNorm, c.rmsEps);
    matmulMany(w.gateUp, xn, n, this.gateUpOut, scratch);
    for (let i = 0, m = n * c.nFf; i < m; i++) {
      const g = gate[i];
      gate[i] = Math.fround(Math.fround(g / (1 + Math.exp(-g))) * up[i]);
    }
    matmul(w.wDown, gate, n, tmp, scratch);
    for (let i = 0, m = n * c.nEmbd; i < m; i++) x[i] = Math.fround(x[i] + tmp[i]);
  }

  /** ggml_rope_cache_init for mode NORM: theta starts at the position and is multiplied by theta_scale in float. */
  private ropeAngles(pos: number): void {
    const { ropeCos, ropeSin, ropeFreqs } = this;
    const fs = this.config.ropeFreqScale;
    let theta = Math.fround(pos);
    for (let i = 0; i < ropeCos.length; i++) {
      const ff = ropeFreqs ? ropeFreqs[i] : 1;
      const a = Math.fround(fs * Math.fround(theta / ff));
      ropeCos[i] = Math.cos(a);
      ropeSin[i] = Math.sin(a);
      theta = Math.fround(theta * this.thetaScale);
    }
  }

  /** Rotates adjacent pairs (x[2i], x[2i+1]) of one head in place; dims past n_rot are left as they are. */
  private rope(buf: Float32Array, off: number): void {
    const { ropeCos, ropeSin } = this;
    for (let i = 0; i < ropeCos.length; i++) {
      const x0 = buf[off + 2 * i];
      const x1 = buf[off + 2 * i + 1];
      const cs = ropeCos[i];
      const sn = ropeSin[i];
      buf[off + 2 * i] = x0 * cs - x1 * sn;
      buf[off + 2 * i + 1] = x0 * sn + x1 * cs;
    }
  }
}

/** ggml rms_norm (float squares summed in double, mean and scale in float) followed by ggml_mul with the norm weight. */
function rmsNorm(src: Float32Array, dst: Float32Array, offset: number, rows: number, width: number, weight: Float32Array, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = offset + r * width;
    let ss = 0;
    for (let i = 0; i < width; i++) ss += Math.fround(src[o + i] * src[o + i]);
    const mean = Math.fround(ss / width);
    const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(mean + eps))));
    for (let i = 0; i < width; i++) dst[o + i] = Math.fround(src[o + i] * scale) * weight[i];
  }
}

/** Loads only the tensors layers [start, end) need, plus the embedding (stage 0) and the head (last stage). */
export function loadStage(options: LoadStageOptions): Stage {
  const file = openGguf(options.path);
  try {
    return buildStage(file, options);
  } finally {
    file.close();
  }
}

function buildStage(file: GgufFile, options: LoadStageOptions): Stage {
  const config = readLlamaConfig(file);
  const { start, end } = options;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > config.nLayer || start >= end) {
    throw new TesseraError("bad_request", `layer range [${start}, ${end}) is not within [0, ${config.nLayer}) or is empty`);
  }
  const loaded: string[] = [];
  let loadedBytes = 0;
  const read = (name: string): Buffer => {
    const buf = file.readTensor(name);
    loaded.push(name);
    loadedBytes += buf.length;
    return buf;
  };
  const matrix = (name: string): Matrix => loadMatrix(read(name), file.tensors.get(name)!);
  const vector = (name: string): Float32Array => loadVector(read(name), file.tensors.get(name)!);
  const layers: LayerWeights[] = [];
  for (let l = start; l < end; l++) {
    const p = `blk.${l}.`;
    const attnNorm = vector(`${p}attn_norm.weight`);
    const wq = matrix(`${p}attn_q.weight`);
    const wk = matrix(`${p}attn_k.weight`);
    const wv = matrix(`${p}attn_v.weight`);
    const wo = matrix(`${p}attn_output.weight`);
    const ffnNorm = vector(`${p}ffn_norm.weight`);
    const wGate = matrix(`${p}ffn_gate.weight`);
    const wUp = matrix(`${p}ffn_up.weight`);
    const wDown = matrix(`${p}ffn_down.weight`);
    layers.push({ attnNorm, wq, wk, wv, wo, ffnNorm, wGate, wUp, wDown, qkv: [wq, wk, wv], gateUp: [wGate, wUp] });
  }
  const isFirst = start === 0;
  const isLast = end === config.nLayer;
  const tied = !file.tensors.has("output.weight");
  const tokenEmbd = isFirst || (isLast && tied) ? matrix("token_embd.weight") : undefined;
  const outputNorm = isLast ? vector("output_norm.weight") : undefined;
  const output = isLast ? (tied ? tokenEmbd : matrix("output.weight")) : undefined;
  const ropeFreqs = file.tensors.has("rope_freqs.weight") ? vector("rope_freqs.weight") : undefined;
  const maxContext = options.maxContext ?? config.contextLength;
  return new Stage(config, start, end, layers, isFirst ? tokenEmbd : undefined, outputNorm, output, ropeFreqs, maxContext, loaded, loadedBytes);
}
