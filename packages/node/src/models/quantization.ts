/**
 * Bytes per parameter by quantization, the fit estimate's main input. Rounded the way operators reason about it
 * (FP16 ≈ 2, INT8 ≈ 1, Q4 ≈ 0.5); real K-quants carry a little more (Q4_K_M ≈ 4.85 bits), which the runtime
 * overhead in `estimateVram` absorbs.
 */
export const BYTES_PER_PARAM = {
  f32: 4,
  f16: 2,
  bf16: 2,
  fp8: 1,
  int8: 1,
  q8: 1,
  q6: 0.75,
  q5: 0.625,
  q4: 0.5,
  int4: 0.5,
  q3: 0.4375,
  q2: 0.3125,
} as const;

export type QuantClass = keyof typeof BYTES_PER_PARAM;

/**
 * Reads a quantization label from any backend's spelling: Ollama's `quantization_level` (`Q4_K_M`, `Q8_0`, `F16`),
 * GGUF file types, Hugging Face suffixes (`-AWQ`, `-GPTQ-Int4`, `-FP8`, `bf16`). Undefined when unknown.
 */
export function parseQuantization(label: string): QuantClass | undefined {
  const l = label.toLowerCase();
  if (/(^|[^a-z0-9])(f32|fp32|float32)([^a-z0-9]|$)/.test(l)) return "f32";
  if (/(^|[^a-z0-9])bf16([^a-z0-9]|$)/.test(l)) return "bf16";
  if (/(^|[^a-z0-9])(f16|fp16|float16|half)([^a-z0-9]|$)/.test(l)) return "f16";
  if (/(^|[^a-z0-9])fp8([^a-z0-9]|$)/.test(l)) return "fp8";
  if (/(^|[^a-z0-9])(awq|gptq|int4|w4a16|nf4|bnb-4bit|4bit)([^a-z0-9]|$)/.test(l)) return "int4";
  if (/(^|[^a-z0-9])(int8|w8a8|8bit)([^a-z0-9]|$)/.test(l)) return "int8";
  const q = /(^|[^a-z0-9])i?q([2-8])(_|[^a-z0-9]|$)/.exec(l);
  if (q) {
    const bits = Number(q[2]);
    if (bits >= 8) return "q8";
    if (bits === 7 || bits === 6) return "q6";
    if (bits === 5) return "q5";
    if (bits === 4) return "q4";
    if (bits === 3) return "q3";
    return "q2";
  }
  return undefined;
}
