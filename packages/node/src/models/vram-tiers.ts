import type { Hardware } from "@tessera/protocol";

/**
 * VRAM tiers and the default model each one gets at `tessera setup` / `tessera model recommend`.
 * A card sold as "24 GB" reports a little less (RTX 4090: 24564 MiB < 24 × 1024), so a tier is reached at 95% of
 * its nominal size. Recommended models are Ollama names at Ollama's default Q4_K_M; each one fits its tier's
 * smallest card by `estimateVram` at the default context (a table test keeps that true). `gguf` is the same model
 * for the embedded engine, as a Hugging Face reference `tessera model install` resolves (single-file Q4_K_M GGUFs
 * from the model makers' or bartowski's repos).
 */
export type VramTier = NonNullable<Hardware["tier"]>;

export interface TierSpec {
  tier: VramTier;
  /** Nominal GiB; 0 for cpu. */
  minGb: number;
  recommended: { model: string; gguf: string; paramsBillion: number };
}

export const VRAM_TIERS: readonly TierSpec[] = [
  { tier: ">=48gb", minGb: 48, recommended: { model: "llama3.3:70b", gguf: "hf:bartowski/Llama-3.3-70B-Instruct-GGUF:Q4_K_M", paramsBillion: 70.6 } },
  { tier: ">=24gb", minGb: 24, recommended: { model: "qwen2.5:32b", gguf: "hf:bartowski/Qwen2.5-32B-Instruct-GGUF:Q4_K_M", paramsBillion: 32.8 } },
  { tier: ">=12gb", minGb: 12, recommended: { model: "qwen2.5:14b", gguf: "hf:bartowski/Qwen2.5-14B-Instruct-GGUF:Q4_K_M", paramsBillion: 14.8 } },
  { tier: ">=8gb", minGb: 8, recommended: { model: "llama3.1:8b", gguf: "hf:bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:Q4_K_M", paramsBillion: 8.0 } },
  { tier: "cpu", minGb: 0, recommended: { model: "qwen2.5:1.5b", gguf: "hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M", paramsBillion: 1.5 } },
];

const TOLERANCE = 0.95;

export function tierForVram(vramMb: number): VramTier {
  for (const spec of VRAM_TIERS) {
    if (spec.minGb > 0 && vramMb >= spec.minGb * 1024 * TOLERANCE) return spec.tier;
  }
  return "cpu";
}

export function recommendedModel(tier: VramTier): string {
  return VRAM_TIERS.find((s) => s.tier === tier)!.recommended.model;
}
