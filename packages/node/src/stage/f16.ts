/**
 * IEEE-754 half precision <-> float conversion, round-to-nearest-even, bit-identical to ggml's
 * `GGML_FP32_TO_FP16` (F16C `_cvtss_sh` with rounding mode 0) and `GGML_FP16_TO_FP32`.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** F16 bits -> float value, all 65536 entries (256 KiB), built once. */
export const F16_TO_F32: Float32Array = buildTable();

function buildTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = sign * mant * 2 ** -24;
    else if (exp === 0x1f) v = mant ? NaN : sign * Infinity;
    else v = sign * (1 + mant / 1024) * 2 ** (exp - 15);
    table[h] = v;
  }
  return table;
}

/** Float -> F16 bits with round-to-nearest-even; overflow goes to infinity, NaN stays NaN. */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches 0x7c00 = infinity at the top).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** The nearest F16-representable value of `value`, as a float. */
export function roundToF16(value: number): number {
  return F16_TO_F32[f32ToF16Bits(value)];
}

/** Rounds `src[0..n)` to F16-representable values into `dst` (may alias `src`). */
export function roundRowToF16(src: Float32Array, dst: Float32Array, n: number, srcOffset = 0, dstOffset = 0): void {
  for (let i = 0; i < n; i++) dst[dstOffset + i] = F16_TO_F32[f32ToF16Bits(src[srcOffset + i])];
}
