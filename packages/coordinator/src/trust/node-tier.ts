import type { NodeTier } from "@tessera/protocol";
import { CHEAT_PRIOR, SUSPECT_P_CHEAT } from "./verification-factor.js";

/**
 * A node's tier, which sets how often its delivered jobs are checked (design.md, "Reputation"). Probation is the
 * operator's, not the node's: a new node of an operator with a long clean record is not a stranger, and an operator
 * cannot shed probation by rotating node keys.
 */

/** An operator is on probation until its nodes have completed this many jobs (the figure). */
export const PROBATION_JOBS = 200;
/**
 * Trusted: at least this many passed checks, and P(cheat) below `TRUSTED_MAX_P_CHEAT`. 50 checks is the operator's
 * probation (~40 checks at 0.2) and ~200 normal jobs after it, or about 2,500 jobs at the normal rate alone.
 */
export const TRUSTED_MIN_PASSED_CHECKS = 50;
/**
 * The prior: the clean evidence since the node's last failed check outweighs the suspicion it raised. Clean checks
 * settle a node well below it whatever the measured rates; one failed check keeps it above for a dozen or more
 * clean ones.
 */
export const TRUSTED_MAX_P_CHEAT = CHEAT_PRIOR;

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
  if (inputs.checksPassed >= TRUSTED_MIN_PASSED_CHECKS && inputs.pCheat < TRUSTED_MAX_P_CHEAT) return "trusted";
  return "normal";
}
