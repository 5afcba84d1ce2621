import type { ScoreResult } from "../../src/backends/adapter.js";

/** How far two scorings of the same answer are apart: |Δ logprob| at each position. */
export function logprobGaps(a: ScoreResult, b: ScoreResult): number[] {
  return a.positions.map((p, i) => Math.abs(p.logprob - b.positions[i]!.logprob));
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
