import { CHECK_FALSE_POSITIVE_RATE, STATISTIC_POSITIONS, type CheckFailure } from "./check-verdict.js";

/**
 * The check of a sampled answer (0 < temperature ≤ 1): how many of its tokens lie outside the reference's top 20,
 * against how many an honest sampler could produce. At each position the reference knows the probability mass of its
 * top 20 (`topMass`), so the mass outside is 1 − topMass. Tempering with T ≤ 1 only moves mass towards the likelier
 * tokens (every token outside the top 20 is less likely than every token in it, so its share can only shrink), and
 * nucleus sampling renormalises by at most 1/top_p; so an honest node picks an outside token at position i with
 * probability at most b_i = min(1, (1 − topMass_i) / top_p). The count of outside tokens is then bounded by a
 * Poisson-binomial(b_1…b_n) variable, and the check fails when the count exceeds its quantile at the false-positive
 * budget. The bound is exact, not fitted, so no calibration enters beyond the engines' agreement on the top 20
 * (design.md, "Spot checks"). It has power where models are confident (real models); on a flat distribution
 * (random weights) b_i is near 1 and the check rightly says nothing. A token outside the top 20 where b_i = 0 fails
 * outright: an honest sampler cannot write it (under a grammar, the reference reports a forbidden token that way).
 * Under a grammar the reference's `topMass` is the allowed share of its top 20 (node verification/grammar-ranks.ts
 * `allowedTopMass`), so the same bound holds for a distribution restricted to the allowed tokens.
 */
export interface SampledClaim {
  outputTokens: readonly number[];
  usage: { promptTokens: number; completionTokens: number };
  maxTokens: number;
  finishReason: "stop" | "length";
  topP: number;
}

export interface SampledReference {
  promptTokens: number;
  positions: ReadonlyArray<{ token: number; rank: number; topMass: number }>;
}

export interface SampledVerdict {
  passed: boolean;
  failures: CheckFailure[];
  stats: { positions: number; outsideTop20: number; limit: number; expectedOutside: number };
}

/** Top-20 ranks as in the greedy verdict. */
const MAX_RANK = 20;

/** P(X > k) for X ~ Poisson-binomial(p): the distribution by dynamic programming, O(n²) for n ≤ 256. */
export function poissonBinomialTailAbove(p: readonly number[], k: number): number {
  let dist = [1];
  for (const q of p) {
    const next = new Array<number>(dist.length + 1).fill(0);
    for (let j = 0; j < dist.length; j++) {
      next[j] += dist[j] * (1 - q);
      next[j + 1] += dist[j] * q;
    }
    dist = next;
  }
  let tail = 0;
  for (let j = k + 1; j < dist.length; j++) tail += dist[j];
  return tail;
}

/** The least k with P(X > k) ≤ falsePositiveRate. */
export function maxOutside(p: readonly number[], falsePositiveRate: number): number {
  for (let k = 0; k < p.length; k++) if (poissonBinomialTailAbove(p, k) <= falsePositiveRate) return k;
  return p.length;
}

export function sampledVerdict(claim: SampledClaim, reference: SampledReference, falsePositiveRate = CHECK_FALSE_POSITIVE_RATE): SampledVerdict {
  const out = claim.outputTokens;
  if (reference.positions.length !== out.length) throw new RangeError(`the reference scored ${reference.positions.length} positions for ${out.length} output tokens`);
  for (let i = 0; i < out.length; i++) {
    if (reference.positions[i].token !== out[i]) throw new RangeError(`the reference scored token ${reference.positions[i].token} at position ${i}, the node sent ${out[i]}`);
  }
  const failures: CheckFailure[] = [];
  if (out.length > claim.maxTokens || (claim.finishReason === "length" && out.length !== claim.maxTokens)) {
    failures.push({ check: "length", detail: `${out.length} tokens, finish reason ${claim.finishReason}, max_tokens ${claim.maxTokens}` });
  }
  if (claim.usage.completionTokens !== out.length || claim.usage.promptTokens !== reference.promptTokens) {
    failures.push({
      check: "usage",
      detail: `claimed ${claim.usage.promptTokens} prompt + ${claim.usage.completionTokens} completion tokens, the reference counts ${reference.promptTokens} + ${out.length}`,
    });
  }
  const n = Math.min(out.length, STATISTIC_POSITIONS);
  const bounds: number[] = [];
  let outside = 0;
  let impossible = 0;
  for (let i = 0; i < n; i++) {
    const p = reference.positions[i];
    const bound = Math.min(1, Math.max(0, 1 - p.topMass) / claim.topP);
    bounds.push(bound);
    if (p.rank > MAX_RANK) {
      outside++;
      if (bound === 0) impossible++;
    }
  }
  if (impossible > 0) {
    // The reference's top 20 hold all the mass there (or, under a grammar, the token is one the grammar forbids).
    failures.push({ check: "top20", detail: `${impossible} sampled tokens outside the reference's top ${MAX_RANK} where an honest sampler cannot write one` });
  }
  const limit = maxOutside(bounds, falsePositiveRate);
  if (outside > limit) {
    failures.push({ check: "top20", detail: `${outside} of ${n} sampled tokens outside the reference's top ${MAX_RANK}; an honest sampler exceeds ${limit} with probability below ${falsePositiveRate}` });
  }
  return { passed: failures.length === 0, failures, stats: { positions: n, outsideTop20: outside, limit, expectedOutside: bounds.reduce((a, b) => a + b, 0) } };
}
