import { parseQuantization, type QuantClass } from "./quantization.js";

/**
 * Parameter count, in billions, from a size label or a model name: `7.6B`, `70b`, `500M`, `qwen2.5:7b`,
 * `Qwen/Qwen2.5-14B-Instruct-AWQ`, `llama3.1:8b-instruct-q8_0`, `mixtral:8x7b` (46.7B total, all resident).
 * Undefined when the name says nothing (then the backend's details must say it).
 */
export function parseParameterCount(text: string): number | undefined {
  const l = text.toLowerCase();
  const moe = /(\d+)x(\d+(?:\.\d+)?)b(?![a-z])/.exec(l);
  // An n×m MoE shares attention layers between experts: ≈ 0.83 of n·m is the usual total (8x7b → 46.7B).
  if (moe) return Math.round(Number(moe[1]) * Number(moe[2]) * 0.834 * 10) / 10;
  const b = /(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z])/.exec(l);
  if (b) return Number(b[1]);
  const m = /(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)m(?![a-z])/.exec(l);
  if (m) return Number(m[1]) / 1000;
  return undefined;
}

export interface ModelSize {
  paramsBillion: number;
  quant: QuantClass;
}

/**
 * Size facts for a model name. `details` (Ollama's `parameter_size` / `quantization_level`) win over the name.
 * Ollama tags without a quantization default to Q4_K_M (Ollama's default); Hugging Face ids (`org/Name`) without
 * one are served at their native BF16.
 */
export function modelSizeFromName(name: string, details?: { parameterSize?: string; quantization?: string }): ModelSize | undefined {
  const paramsBillion = (details?.parameterSize && parseParameterCount(details.parameterSize)) || parseParameterCount(name);
  if (paramsBillion === undefined) return undefined;
  const explicit = (details?.quantization && parseQuantization(details.quantization)) || parseQuantization(name.split(":")[1] ?? name);
  const quant = explicit ?? (name.includes("/") ? "bf16" : "q4");
  return { paramsBillion, quant };
}
