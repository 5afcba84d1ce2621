import type { Priors, ScoreWeights } from "./types.js";

/** The defaults design.md argues for. */
export const DEFAULT_WEIGHTS: Readonly<ScoreWeights> = Object.freeze({
  ttftWeight: 1,
  completionWeight: 1,
  queueWeight: 1,
  reputationWeight: 1,
  affinityDiscount: 0.5,
  prefixTtlMs: 300_000,
  affinityMaxLoad: 0.75,
});

export const DEFAULT_PRIORS: Readonly<Priors> = Object.freeze({
  tokensPerSecond: 20,
  prefillTokensPerSecond: 500,
  ttftBaseMs: 50,
  rttMs: 300,
});

/** Reputation below this is treated as this, so a cost never divides by zero. */
export const MIN_REPUTATION = 0.01;

/** How many scored candidates a pick returns for the log (the winner is always first). */
export const DEFAULT_EXPLAIN_TOP = 10;
