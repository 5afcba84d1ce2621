/**
 * The completion factor of a node's reputation: how reliably it finishes the work it takes, from a rolling window of
 * its most recent outcomes, mapped onto a ladder of tiers (design.md, "Reputation").
 */

/** Outcomes kept per node: enough that one failure among them is a 0.5 % rate, the top rung's width. */
export const COMPLETION_WINDOW = 200;

/**
 * The ladder, best first: a node whose completion rate is at least `min` gets `factor`. The issue fixes the first
 * three rungs (> 99.5 % → 1.0, 98–99.5 % → 0.9, 96–98 % → 0.8); below that the allowed failure rate doubles per rung
 * (8 %, 16 %, 32 %, 64 %) while the factor drops by 0.1, so each rung is a distinctly worse node, and the floor (0.3)
 * still lets a flaky node take work when every better node is loaded (the cost divides by the factor).
 */
export const COMPLETION_LADDER: ReadonlyArray<{ min: number; factor: number }> = [
  { min: 0.995, factor: 1.0 },
  { min: 0.98, factor: 0.9 },
  { min: 0.96, factor: 0.8 },
  { min: 0.92, factor: 0.7 },
  { min: 0.84, factor: 0.6 },
  { min: 0.68, factor: 0.5 },
  { min: 0.36, factor: 0.4 },
  { min: 0, factor: 0.3 },
];

/**
 * The rate a node is judged by is the upper end of the 95 % Wilson score interval of its window (z = 1.96, so 97.5 %
 * one-sided): it drops a rung only when its record shows, with that confidence, that it is below the rung. A small
 * sample is mostly noise, and this reads it as such: one failure in a newcomer's first ten jobs rates 0.9 (its raw
 * 90 % would rate 0.6), one in its first twenty still 0.9; over a full window the bound is within about half a point
 * of the measured rate. The cooldown, not this factor, answers a single failure.
 */
const Z = 1.96;

/** The rate a node is judged by: the upper end of the Wilson score interval of `completed` out of `total`; 1 when empty. */
export function completionRateBound(completed: number, total: number): number {
  if (total <= 0) return 1;
  const p = completed / total;
  const z2 = Z * Z;
  const centre = p + z2 / (2 * total);
  const margin = Z * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total));
  return Math.min(1, (centre + margin) / (1 + z2 / total));
}

/** The factor of the rung `rate` reaches. */
export function completionFactorForRate(rate: number): number {
  for (const rung of COMPLETION_LADDER) if (rate >= rung.min) return rung.factor;
  return COMPLETION_LADDER.at(-1)!.factor;
}

/** The completion factor of a window holding `completed` successes among `total` outcomes. */
export function completionFactor(completed: number, total: number): number {
  return completionFactorForRate(completionRateBound(completed, total));
}

/**
 * A node's last `COMPLETION_WINDOW` outcomes (true = completed), oldest dropped first, with the completed count kept
 * as it goes. Serialised as a string of `1`/`0`, oldest first, for the store.
 */
export class OutcomeWindow {
  private readonly outcomes: boolean[] = [];
  private completedCount = 0;

  constructor(private readonly size: number = COMPLETION_WINDOW) {}

  static parse(text: string, size: number = COMPLETION_WINDOW): OutcomeWindow {
    const window = new OutcomeWindow(size);
    for (const c of text.slice(-size)) window.push(c === "1");
    return window;
  }

  push(completed: boolean): void {
    this.outcomes.push(completed);
    if (completed) this.completedCount++;
    if (this.outcomes.length > this.size && this.outcomes.shift()) this.completedCount--;
  }

  get completed(): number {
    return this.completedCount;
  }

  get total(): number {
    return this.outcomes.length;
  }

  /** The completed fraction as measured (1 when empty), for display. */
  get rate(): number {
    return this.outcomes.length === 0 ? 1 : this.completedCount / this.outcomes.length;
  }

  factor(): number {
    return completionFactor(this.completedCount, this.outcomes.length);
  }

  toString(): string {
    let s = "";
    for (const o of this.outcomes) s += o ? "1" : "0";
    return s;
  }
}
