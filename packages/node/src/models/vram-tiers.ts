import type { Hardware } from "@tessera/protocol";

/**
 * VRAM tiers and the default model each one gets at `tessera setup` / `tessera model recommend`.
 * A card sold as "24 GB" reports a little less (RTX 4090: 24564 MiB < 24 × 1024), so a tier is reached at 95% of
 * its nominal size. Recommended models are Ollama names at Ollama's default Q4_K_M; each one fits its tier's
 * smallest card by `estimateVram` at the default context (a table test keeps that true).
 */
export type VramTier = NonNullable<Hardware["tier"]>;

export interface TierSpec {
  tier: VramTier;
  /** Nominal GiB; 0 for cpu. */
  minGb: number;
  recommended: { model: string; paramsBillion: number };
}

export const VRAM_TIERS: readonly TierSpec[] = [
  { tier: ">=48gb", minGb: 48, recommended: { model: "llama3.3:70b", paramsBillion: 70.6 } },
  { tier: ">=24gb", minGb: 24, recommended: { model: "qwen2.5:32b", paramsBillion: 32.8 } },
  { tier: ">=12gb", minGb: 12, recommended: { model: "qwen2.5:14b", paramsBillion: 14.8 } },
  { tier: ">=8gb", minGb: 8, recommended: { model: "llama3.1:8b", paramsBillion: 8.0 } },
  { tier: "cpu", minGb: 0, recommended: { model: "qwen2.5:1.5b", paramsBillion: 1.5 } },
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
