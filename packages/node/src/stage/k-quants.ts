/**
 * K-quant weights (Q4_K, Q6_K: super-blocks of 256, the types of a Q4_K_M file) and the Q8_K activation they are
 * dotted with, as llama.cpp's CPU backend does (`vec_dot_type` of both is Q8_K).
 *
 * In the arena a K-quant matrix is unpacked once at load into what the SIMD kernels read without bit-twiddling:
 * - Q4_K: the 4-bit quants as in the file (128 bytes a super-block, nibble order kept), the eight 6-bit scales and
 *   eight 6-bit mins as bytes (16 a super-block), and `d`, `dmin` as f32 (8 bytes). 4.5 bits a weight, as the file.
 * - Q6_K: the quants as int8 `q - 32` (256 bytes), the sixteen int8 scales (16), `d` as f32 (4). 8.6 bits a weight
 *   against the file's 6.6: the high bits are not re-spliced per token.
 * A Q8_K activation row is int8 quants, one f32 `d` per 256 (`d = max / -127` with `max` the signed value of largest
 * magnitude, quants rounded to nearest even as ggml's `nearest_int`), and the quant sums of every 32 as int16 (for
 * the Q4_K mins). ggml keeps sums of 16; a sum of 32 is two of them added, so the integers are the same.
 */
import { TesseraError } from "@tessera/protocol";
import { F16_TO_F32 } from "./f16.js";
import { GGML_TYPE, type GgufTensorInfo } from "./gguf-reader.js";
import { wasmArena, type WasmArena } from "./wasm-matvec.js";

export const QK_K = 256;
const Q4_K_BYTES = 144;
const Q6_K_BYTES = 210;

export interface KQuantMatrix {
  kind: "q4_k" | "q6_k";
  rows: number;
  cols: number;
  /** Arena byte offsets: quants, per-sub-block scales (Q4_K: then mins), per-super-block f32 `d` (Q4_K: d, dmin). */
  quants: number;
  scales: number;
  d: number;
}

/** A Q8_K activation row of `cols` values: the quants at 0, the f32 `d`s at q8kDOffset, the int16 sums at q8kSumsOffset. */
export const q8kDOffset = (cols: number): number => cols;
export const q8kSumsOffset = (cols: number): number => cols + (cols / QK_K) * 4;
/** Bytes of one Q8_K row; a multiple of 4, so rows laid end to end keep the `d`s aligned. */
export const q8kRowBytes = (cols: number): number => q8kSumsOffset(cols) + (cols / 32) * 2;

function arenaOrFail(info: GgufTensorInfo): WasmArena {
  const arena = wasmArena();
  if (!arena) throw new TesseraError("bad_request", `tensor ${info.name}: K-quant weights need WebAssembly SIMD, which this runtime lacks`);
  return arena;
}

/** Unpacks a Q4_K or Q6_K tensor from its file bytes into the arena. */
export function loadKQuant(buf: Buffer, info: GgufTensorInfo): KQuantMatrix {
  const cols = info.dims[0];
  const rows = info.elementCount / cols;
  if (cols % QK_K !== 0) throw new TesseraError("bad_request", `tensor ${info.name}: a K-quant row must be a multiple of ${QK_K} values, got ${cols}`);
  const arena = arenaOrFail(info);
  const nb = info.elementCount / QK_K;
  if (info.type === GGML_TYPE.Q4_K) {
    const m = { kind: "q4_k", rows, cols, quants: arena.alloc(nb * 128, 1), scales: arena.alloc(nb * 16, 1), d: arena.alloc(nb * 2) } as const;
    const u8 = arena.heapU8;
    const f32 = arena.heap;
    for (let b = 0; b < nb; b++) {
      const o = b * Q4_K_BYTES;
      f32[(m.d >> 2) + 2 * b] = F16_TO_F32[buf[o] | (buf[o + 1] << 8)];
      f32[(m.d >> 2) + 2 * b + 1] = F16_TO_F32[buf[o + 2] | (buf[o + 3] << 8)];
      // ggml's get_scale_min_k4: six bits each, the top two of sub-blocks 4-7 stored in the top of bytes 0-7.
      const s = o + 4;
      const sm = m.scales + 16 * b;
      for (let j = 0; j < 4; j++) {
        u8[sm + j] = buf[s + j] & 63;
        u8[sm + 8 + j] = buf[s + j + 4] & 63;
        u8[sm + j + 4] = (buf[s + j + 8] & 15) | ((buf[s + j] >> 6) << 4);
        u8[sm + 8 + j + 4] = (buf[s + j + 8] >> 4) | ((buf[s + j + 4] >> 6) << 4);
      }
      u8.set(buf.subarray(o + 16, o + Q4_K_BYTES), m.quants + 128 * b);
    }
    return m;
  }
  if (info.type === GGML_TYPE.Q6_K) {
    const m = { kind: "q6_k", rows, cols, quants: arena.alloc(nb * QK_K, 1), scales: arena.alloc(nb * 16, 1), d: arena.alloc(nb) } as const;
    const i8 = arena.heapI8;
    const f32 = arena.heap;
    for (let b = 0; b < nb; b++) {
      const o = b * Q6_K_BYTES;
      const q = m.quants + QK_K * b;
      // ggml's dequantize_row_q6_K: per 128 values, 64 bytes of low nibbles and 32 of 2-bit pairs.
      for (let n = 0; n < 2; n++) {
        for (let l = 0; l < 32; l++) {
          const ql0 = buf[o + 64 * n + l];
          const ql1 = buf[o + 64 * n + l + 32];
          const qh = buf[o + 128 + 32 * n + l];
          i8[q + 128 * n + l] = ((ql0 & 15) | ((qh & 3) << 4)) - 32;
          i8[q + 128 * n + l + 32] = ((ql1 & 15) | (((qh >> 2) & 3) << 4)) - 32;
          i8[q + 128 * n + l + 64] = ((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32;
          i8[q + 128 * n + l + 96] = ((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32;
        }
      }
      for (let g = 0; g < 16; g++) i8[m.scales + 16 * b + g] = buf[o + 192 + g]; // stored as int8: wraps to signed
      f32[(m.d >> 2) + b] = F16_TO_F32[buf[o + 208] | (buf[o + 209] << 8)];
    }
    return m;
  }
  throw new TesseraError("bad_request", `tensor ${info.name}: not a K-quant type`);
}

/** Arena bytes of a loaded Q4_K / Q6_K tensor (before 64-byte alignment of its three parts). */
export function kQuantResidentBytes(info: GgufTensorInfo): number {
  const nb = info.elementCount / QK_K;
  return info.type === GGML_TYPE.Q4_K ? nb * (128 + 16 + 8) : nb * (QK_K + 16 + 4);
}

/** Row `row` of a K-quant matrix as floats (embedding lookup), with ggml's dequantize_row_q4_K / q6_K arithmetic. */
export function kQuantRow(m: KQuantMatrix, row: number, out: Float32Array, outOffset: number): void {
  const arena = wasmArena()!;
  const u8 = arena.heapU8;
  const i8 = arena.heapI8;
  const f32 = arena.heap;
  const perRow = m.cols / QK_K;
  for (let k = 0; k < perRow; k++) {
    const b = row * perRow + k;
    const o = outOffset + k * QK_K;
    if (m.kind === "q4_k") {
      const d = f32[(m.d >> 2) + 2 * b];
      const dmin = f32[(m.d >> 2) + 2 * b + 1];
      for (let j = 0; j < 8; j++) {
        const scale = Math.fround(d * u8[m.scales + 16 * b + j]);
        const min = Math.fround(dmin * u8[m.scales + 16 * b + 8 + j]);
        const shift = (j & 1) * 4;
        const q = m.quants + 128 * b + 32 * (j >> 1);
        // ggml's `d1 * q - m1` is compiled to one fused multiply-add (x86-64 with FMA): one rounding, as here in double.
        for (let l = 0; l < 32; l++) out[o + 32 * j + l] = scale * ((u8[q + l] >> shift) & 15) - min;
      }
    } else {
      const d = f32[(m.d >> 2) + b];
      for (let i = 0; i < QK_K; i++) out[o + i] = Math.fround(d * i8[m.scales + 16 * b + (i >> 4)]) * i8[m.quants + QK_K * b + i];
    }
  }
}

/** ggml's nearest_int: round to nearest, ties to even. */
function nearestInt(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Quantises `nTok` rows of `cols` floats (cols % 256 == 0) to Q8_K into the arena at `base`, row after row, each
 * laid out as described at q8kDOffset; ggml's quantize_row_q8_K_ref.
 */
export function quantizeQ8K(arena: WasmArena, x: Float32Array, nTok: number, cols: number, base: number): void {
  const i8 = arena.heapI8;
  const f32 = arena.heap;
  const i16 = arena.heapI16;
  for (let t = 0; t < nTok; t++) {
    const row = base + t * q8kRowBytes(cols);
    const d = row + q8kDOffset(cols);
    const sums = row + q8kSumsOffset(cols);
    for (let b = 0; b < cols / QK_K; b++) {
      const xo = t * cols + b * QK_K;
      const qo = row + b * QK_K;
      let max = 0;
      let amax = 0;
      for (let i = 0; i < QK_K; i++) {
        const a = Math.abs(x[xo + i]);
        if (a > amax) {
          amax = a;
          max = x[xo + i];
        }
      }
      if (amax === 0) {
        f32[(d >> 2) + b] = 0;
        i8.fill(0, qo, qo + QK_K);
      } else {
        const iscale = Math.fround(-127 / max);
        for (let i = 0; i < QK_K; i++) i8[qo + i] = Math.min(127, nearestInt(Math.fround(iscale * x[xo + i])));
        f32[(d >> 2) + b] = Math.fround(1 / iscale);
      }
      for (let s = 0; s < QK_K / 32; s++) {
        let sum = 0;
        for (let i = 0; i < 32; i++) sum += i8[qo + 32 * s + i];
        i16[(sums >> 1) + b * 8 + s] = sum;
      }
    }
  }
}
