import { BYTES_PER_PARAM, type QuantClass } from "./quantization.js";

/**
 * VRAM a model needs: weights (parameters × bytes per parameter) + KV cache for the context + runtime overhead.
 * - KV cache per token defaults to 16 KiB per billion parameters: right for today's grouped-query-attention
 *   models (Llama-3 8B: 128 KiB/token) and on the safe side for large ones; pass the real figure when known
 *   (2 × layers × kv_heads × head_dim × 2 bytes).
 * - Overhead: 5% of the weights (compute buffers) + 512 MiB (CUDA context, runtime).
 * This is for refusing what surely cannot fit, not for packing memory to the last byte.
 */
export interface VramEstimateInput {
  paramsBillion: number;
  quant: QuantClass;
  contextTokens?: number;
  kvBytesPerToken?: number;
}

export interface VramEstimate {
  weightsBytes: number;
  kvCacheBytes: number;
  overheadBytes: number;
  totalBytes: number;
}

export const DEFAULT_CONTEXT_TOKENS = 4096;
const MIB = 1024 * 1024;

export function estimateVram(input: VramEstimateInput): VramEstimate {
  if (!(input.paramsBillion > 0)) throw new RangeError("paramsBillion must be positive");
  const weightsBytes = Math.round(input.paramsBillion * 1e9 * BYTES_PER_PARAM[input.quant]);
  const kvPerToken = input.kvBytesPerToken ?? Math.round(16 * 1024 * input.paramsBillion);
  const kvCacheBytes = (input.contextTokens ?? DEFAULT_CONTEXT_TOKENS) * kvPerToken;
  const overheadBytes = Math.round(weightsBytes * 0.05) + 512 * MIB;
  return { weightsBytes, kvCacheBytes, overheadBytes, totalBytes: weightsBytes + kvCacheBytes + overheadBytes };
}

export interface FitResult {
  fits: boolean;
  requiredMb: number;
  availableMb: number;
}

/** Whether an estimate fits in `vramMb` (the node's total GPU memory, or usable unified memory on Apple). */
export function checkFit(estimate: VramEstimate, vramMb: number): FitResult {
  const requiredMb = Math.ceil(estimate.totalBytes / MIB);
  return { fits: requiredMb <= vramMb, requiredMb, availableMb: vramMb };
}
