/**
 * float32 → bfloat16 (the top 16 bits of the f32), rounded to nearest even, as ggml's `ggml_compute_fp32_to_bf16`:
 * add 0x7fff plus the kept part's lowest bit, then drop the low 16 bits (a carry into the exponent is correct and
 * rounds the largest finite values to ±Inf). NaN stays NaN, forced quiet. Subnormals are kept, as ggml's scalar
 * conversion keeps them.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float32ToBFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits → float32 value (exact: the bits become the top half of an f32). */
export function bfloat16BitsToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}
