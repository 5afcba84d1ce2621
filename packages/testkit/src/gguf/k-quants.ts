/**
 * Encoders for ggml's K-quant super-blocks (256 values each), the types of the Q4_K_M files most people download:
 *
 * - Q4_K (144 bytes): f16 `d`, f16 `dmin`, 12 bytes packing eight 6-bit sub-block scales and eight 6-bit mins, then
 *   128 bytes of 4-bit quants. Value = d·sc_j·q − dmin·m_j for sub-block j (32 values). Within each 64 values the
 *   low nibbles of 32 bytes hold the first 32 values and the high nibbles the next 32.
 * - Q6_K (210 bytes): 128 bytes of low 4 bits, 64 bytes of high 2 bits, sixteen int8 scales (one per 16 values),
 *   f16 `d`. Value = d·sc_g·(q − 32).
 *
 * The quantizers are simple (scale from each sub-block's range, nearest quant), not ggml's error-minimising search:
 * any valid block is a valid file, and both engines read the same bytes. Layouts follow ggml-common.h's
 * `block_q4_K` / `block_q6_K` and `dequantize_row_q4_K` / `dequantize_row_q6_K`.
 */
import { float16BitsToFloat32, float32ToFloat16Bits } from "./float16.js";

export const QK_K = 256;
export const Q4_K_BYTES = 144;
export const Q6_K_BYTES = 210;

const f16 = (v: number) => float16BitsToFloat32(float32ToFloat16Bits(v));
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

export function encodeQ4K(values: Float32Array): Buffer {
  const blocks = values.length / QK_K;
  const out = Buffer.alloc(blocks * Q4_K_BYTES);
  const scales = new Float64Array(8);
  const mins = new Float64Array(8);
  const sc = new Uint8Array(8);
  const m = new Uint8Array(8);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QK_K, (b + 1) * QK_K);
    for (let j = 0; j < 8; j++) {
      let lo = 0;
      let hi = -Infinity;
      for (let i = 32 * j; i < 32 * j + 32; i++) {
        lo = Math.min(lo, x[i]);
        hi = Math.max(hi, x[i]);
      }
      scales[j] = (hi - lo) / 15;
      mins[j] = -lo;
    }
    const d = f16(Math.max(...scales) / 63);
    const dmin = f16(Math.max(...mins) / 63);
    for (let j = 0; j < 8; j++) {
      sc[j] = d > 0 ? clamp(Math.round(scales[j] / d), 0, 63) : 0;
      m[j] = dmin > 0 ? clamp(Math.round(mins[j] / dmin), 0, 63) : 0;
    }
    const o = b * Q4_K_BYTES;
    out.writeUInt16LE(float32ToFloat16Bits(d), o);
    out.writeUInt16LE(float32ToFloat16Bits(dmin), o + 2);
    // The 6-bit packing read back by ggml's get_scale_min_k4.
    for (let j = 0; j < 4; j++) {
      out[o + 4 + j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
      out[o + 8 + j] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
      out[o + 12 + j] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
    }
    const q = (i: number) => {
      const j = i >> 5;
      const step = d * sc[j];
      return step > 0 ? clamp(Math.round((x[i] + dmin * m[j]) / step), 0, 15) : 0;
    };
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) out[o + 16 + 32 * c + l] = q(64 * c + l) | (q(64 * c + 32 + l) << 4);
    }
  }
  return out;
}

export function encodeQ6K(values: Float32Array): Buffer {
  const blocks = values.length / QK_K;
  const out = Buffer.alloc(blocks * Q6_K_BYTES);
  const scales = new Float64Array(16);
  const sc = new Int8Array(16);
  const q = new Uint8Array(QK_K);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QK_K, (b + 1) * QK_K);
    for (let g = 0; g < 16; g++) {
      let amax = 0;
      for (let i = 16 * g; i < 16 * g + 16; i++) amax = Math.max(amax, Math.abs(x[i]));
      scales[g] = amax / 31;
    }
    const d = f16(Math.max(...scales) / 127);
    for (let g = 0; g < 16; g++) sc[g] = d > 0 ? clamp(Math.round(scales[g] / d), 0, 127) : 0;
    for (let i = 0; i < QK_K; i++) {
      const step = d * sc[i >> 4];
      q[i] = (step > 0 ? clamp(Math.round(x[i] / step), -32, 31) : 0) + 32;
    }
    const o = b * Q6_K_BYTES;
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 32; l++) {
        const [q1, q2, q3, q4] = [q[128 * n + l], q[128 * n + l + 32], q[128 * n + l + 64], q[128 * n + l + 96]];
        out[o + 64 * n + l] = (q1 & 15) | ((q3 & 15) << 4);
        out[o + 64 * n + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
        out[o + 128 + 32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
    for (let g = 0; g < 16; g++) out.writeInt8(sc[g], o + 192 + g);
    out.writeUInt16LE(float32ToFloat16Bits(d), o + 208);
  }
  return out;
}
