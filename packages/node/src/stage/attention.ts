/**
 * Grouped-query attention over a request's F16 KV cache, as llama.cpp's CPU path without flash attention computes it:
 * `KQ = mul_mat(K_f16, Q)` (Q rounded to F16), `soft_max_ext(KQ * 1/sqrt(head_dim), causal mask)` in F32 with the
 * sum in double, `KQV = mul_mat(V_f16, KQ)` (probabilities rounded to F16). Query head h reads KV head
 * h / (n_head / n_head_kv). With the WASM arena the two products run in SIMD kernels over the cache in place (the
 * scores are a matvec over K rows, the output a weighted sum of V rows); the softmax stays in JS (it needs exp).
 */
import { F16_TO_F32, f32ToF16Bits } from "./f16.js";
import type { KvCache } from "./kv-cache.js";
import type { LlamaConfig } from "./llama-config.js";
import { F16_INPUT_SCALE } from "./wasm-kernels.js";
import { ArenaBuffer, copyFloats, type WasmArena } from "./wasm-matvec.js";

export class Attention {
  private readonly qBuf = new ArenaBuffer();
  private readonly outBuf = new ArenaBuffer();
  private readonly scoreBuf = new ArenaBuffer();
  private scores = new Float32Array(0);
  private readonly qh: Float32Array;
  private readonly scale: number;
  private readonly group: number;

  constructor(private readonly config: LlamaConfig, private readonly arena: WasmArena | null) {
    this.qh = new Float32Array(config.headDim);
    this.scale = Math.fround(1 / Math.sqrt(config.headDim));
    this.group = config.nHead / config.nHeadKv;
  }

  /**
   * attn[t][h*hd ..] for t < n: query rows `q` ([n][n_head*hd], RoPE applied) of the tokens at `positions`, over
   * cells [0, nCells) of layer `li` of `cache` (these tokens already written), masking cells past each position.
   */
  run(li: number, q: Float32Array, n: number, positions: ArrayLike<number>, cache: KvCache, nCells: number, attn: Float32Array): void {
    if (this.arena) this.runWasm(this.arena, li, q, n, positions, cache, nCells, attn);
    else this.runJs(li, q, n, positions, cache, nCells, attn);
  }

  /** scores[j] (j < nCells) -> probabilities in place: mask, scale, softmax; returns nothing, sum in double. */
  private softmax(scores: Float32Array, off: number, nCells: number, cellPos: Int32Array, pos: number): void {
    let max = -Infinity;
    for (let j = 0; j < nCells; j++) {
      if (cellPos[j] > pos) {
        scores[off + j] = -Infinity;
        continue;
      }
      const s = Math.fround(scores[off + j] * this.scale);
      scores[off + j] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let j = 0; j < nCells; j++) {
      const s = scores[off + j];
      const e = s === -Infinity ? 0 : Math.fround(Math.exp(s - max));
      scores[off + j] = e;
      sum += e;
    }
    const inv = Math.fround(1 / sum);
    for (let j = 0; j < nCells; j++) scores[off + j] = scores[off + j] * inv;
  }

  private runWasm(a: WasmArena, li: number, q: Float32Array, n: number, positions: ArrayLike<number>, cache: KvCache, nCells: number, attn: Float32Array): void {
    const c = this.config;
    const hd = c.headDim;
    const qWidth = c.nHead * hd;
    const kvStride = c.nHeadKv * hd * 2;
    const cells4 = (nCells + 3) & ~3;
    const qPtr = this.qBuf.ensure(a, qWidth * 4);
    const outPtr = this.outBuf.ensure(a, qWidth * 4);
    const sPtr = this.scoreBuf.ensure(a, cache.capacity * 4 + 16);
    const kPtr = cache.kPtr[li];
    const vPtr = cache.vPtr[li];
    for (let t = 0; t < n; t++) {
      let heap = a.heap;
      copyFloats(heap, qPtr >> 2, q, t * qWidth, qWidth);
      a.roundF16(qPtr, qPtr, qWidth, F16_INPUT_SCALE);
      for (let h = 0; h < c.nHead; h++) {
        const kvOff = Math.floor(h / this.group) * hd * 2;
        a.matvecF16(kPtr + kvOff, qPtr + h * hd * 4, sPtr, nCells, hd, kvStride);
        heap = a.heap;
        this.softmax(heap, sPtr >> 2, nCells, cache.positions, positions[t]);
        a.roundF16(sPtr, sPtr, cells4, F16_INPUT_SCALE);
        a.weightedSumF16(vPtr + kvOff, sPtr, outPtr + h * hd * 4, nCells, hd, kvStride);
      }
      heap = a.heap;
      copyFloats(attn, t * qWidth, heap, outPtr >> 2, qWidth);
    }
  }

  private runJs(li: number, q: Float32Array, n: number, positions: ArrayLike<number>, cache: KvCache, nCells: number, attn: Float32Array): void {
    const c = this.config;
    const hd = c.headDim;
    const qWidth = c.nHead * hd;
    const kvWidth = c.nHeadKv * hd;
    if (this.scores.length < nCells) this.scores = new Float32Array(cache.capacity);
    const { qh, scores } = this;
    const kc = cache.halves(li, "k");
    const vc = cache.halves(li, "v");
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < c.nHead; h++) {
        const kvOff = Math.floor(h / this.group) * hd;
        const qOff = t * qWidth + h * hd;
        for (let d = 0; d < hd; d++) qh[d] = F16_TO_F32[f32ToF16Bits(q[qOff + d])];
        for (let j = 0; j < nCells; j++) {
          const ko = kc.base + j * kvWidth + kvOff;
          let s = 0;
          for (let d = 0; d < hd; d++) s += qh[d] * F16_TO_F32[kc.u16[ko + d]];
          scores[j] = s;
        }
        this.softmax(scores, 0, nCells, cache.positions, positions[t]);
        attn.fill(0, qOff, qOff + hd);
        for (let j = 0; j < nCells; j++) {
          if (scores[j] === 0) continue;
          const p = F16_TO_F32[f32ToF16Bits(scores[j])];
          const vo = vc.base + j * kvWidth + kvOff;
          for (let d = 0; d < hd; d++) attn[qOff + d] += p * F16_TO_F32[vc.u16[vo + d]];
        }
      }
    }
  }
}
