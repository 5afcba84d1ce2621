import type { NodeTier } from "@tessera/protocol";
import { SUSPECT_P_CHEAT } from "./verification-factor.js";

/**
 * A node's tier, which sets how often its delivered jobs are checked (design.md, "Reputation"). Probation is the
 * operator's, not the node's: a new node of an operator with a long clean record is not a stranger, and an operator
 * cannot shed probation by rotating node keys.
 */

/** An operator is on probation until its nodes have completed this many jobs (the figure). */
export const PROBATION_JOBS = 200;
/**
 * Trusted: at least this many passed checks, and P(cheat) at most `TRUSTED_MAX_P_CHEAT`. 50 checks is about 10,000
 * jobs at the trusted rate, or the operator's probation (~40 checks at 0.2) and ~200 normal jobs after it.
 */
export const TRUSTED_MIN_PASSED_CHECKS = 50;
/**
 * About twice what a node that passes every check settles at (~0.001 with the placeholder likelihoods): a failed
 * check keeps a node out of the trusted tier for the next ~24 clean checks.
 */
export const TRUSTED_MAX_P_CHEAT = 0.002;

/** The probability that a delivered job of a node in each tier is checked (the figures). */
export const CHECK_RATES: Readonly<Record<NodeTier, number>> = Object.freeze({
  probation: 0.2,
  normal: 0.05,
  trusted: 0.02,
  suspect: 1,
});

export interface TierInputs {
  pCheat: number;
  checksPassed: number;
  /** Jobs the node's operator has completed, over all its nodes. */
  operatorCompletedJobs: number;
}

/** Suspicion first (a suspect in probation is still checked every time), then probation, then trust. */
export function nodeTier(inputs: TierInputs): NodeTier {
  if (inputs.pCheat >= SUSPECT_P_CHEAT) return "suspect";
  if (inputs.operatorCompletedJobs < PROBATION_JOBS) return "probation";
  if (inputs.checksPassed >= TRUSTED_MIN_PASSED_CHECKS && inputs.pCheat <= TRUSTED_MAX_P_CHEAT) return "trusted";
  return "normal";
}
