/**
 * Turning honest cross-engine data into the verdict's thresholds (trust design.md, "Verification"). Pure.
 *
 * - top-1 mismatches: the per-position mismatch rate, pooled over honest positions, bounded above at 95 %
 *   confidence (Clopper-Pearson); the verdict takes the binomial quantile of that rate at its false-positive budget.
 * - mean |claimed − reference| log-probability: a mean over n positions exceeds t only if some position does, so
 *   P(mean > t) ≤ n · P(one position > t) with no assumption of independence. P(one position > t) beyond the data is
 *   extrapolated from the top 1 % of per-position values with an exponential tail (peaks over a threshold u, mean
 *   excess β): P(> t) ≈ (k/N) · exp(−(t − u)/β). The threshold solves 256 · P(> t) = budget.
 */
import { binomialTailAbove } from "../packages/coordinator/src/trust/check-verdict.js";

/** Upper 95 % Clopper-Pearson bound of a rate with `events` in `trials` (bisection on the binomial CDF). */
export function rateUpperBound(events: number, trials: number, confidence = 0.95): number {
  if (trials === 0) return 1;
  let lo = events / trials;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    // P(Bin(trials, mid) <= events) = 1 - P(> events): the bound is where that falls to 1 - confidence.
    if (1 - binomialTailAbove(trials, mid, events) > 1 - confidence) lo = mid;
    else hi = mid;
  }
  return hi;
}

export interface TailFit {
  /** Per-position values the fit saw. */
  n: number;
  /** The threshold u (the (1 − k/n) quantile) and how many values lie above it. */
  u: number;
  k: number;
  /** Mean excess over u: the exponential tail's scale. */
  beta: number;
  max: number;
}

export function fitExponentialTail(values: readonly number[], tailShare = 0.01): TailFit {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const k = Math.max(10, Math.floor(n * tailShare));
  if (n <= k) throw new RangeError(`a tail fit needs more than ${k} values, got ${n}`);
  const u = sorted[n - k - 1];
  let excess = 0;
  for (let i = n - k; i < n; i++) excess += sorted[i] - u;
  return { n, u, k, beta: excess / k, max: sorted[n - 1] };
}

/** P(one position > t) under the fitted tail. */
export function tailProbability(fit: TailFit, t: number): number {
  if (t <= fit.u) return fit.k / fit.n;
  return (fit.k / fit.n) * Math.exp(-(t - fit.u) / fit.beta);
}

/** The t with positions · P(one position > t) = budget. */
export function gapThreshold(fit: TailFit, positions: number, budget: number): number {
  return fit.u + fit.beta * Math.log((positions * fit.k) / (fit.n * budget));
}
