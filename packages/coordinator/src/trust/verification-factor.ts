import { CHECK_FALSE_POSITIVE_RATE, CHECK_MISS_RATE } from "./check-likelihoods.js";

/**
 * The verification factor of a node's reputation, 1 − P(cheat), kept as log-odds and updated by Bayes' rule on each
 * check (design.md, "Reputation"). Log-odds make each check one addition and never round a near-certainty to 1.
 */

export interface CheckLikelihoods {
  /** P(a check fails | the node is honest). */
  falsePositiveRate: number;
  /** P(a check passes | the node cheats). */
  missRate: number;
}

export const MEASURED_LIKELIHOODS: Readonly<CheckLikelihoods> = Object.freeze({
  falsePositiveRate: CHECK_FALSE_POSITIVE_RATE,
  missRate: CHECK_MISS_RATE,
});

/**
 * P(cheat) of a node nothing is known about: the share of cheaters an open network should expect before any check.
 * Low enough that a newcomer routes like anyone else (factor 0.99), high enough that one failed check makes it
 * suspect and two quarantine it (see the figures in design.md).
 */
export const CHEAT_PRIOR = 0.01;
/**
 * Each clean check keeps this share of the node's distance from the prior (in log-odds) before adding its own
 * evidence: the memory is about ten checks. Without it a long honest record would outweigh any number of later
 * failures (a node that turns bad keeps its past), and one false positive would never fade.
 */
export const CLEAN_CHECK_DECAY = 0.9;
/** Above this P(cheat) the node is quarantined: no jobs, earnings held (the figure). */
export const QUARANTINE_P_CHEAT = 0.99;
/** At or above this P(cheat) the node is `suspect` and every job it runs is checked: any failed check puts it there. */
export const SUSPECT_P_CHEAT = 0.1;

/** Log-odds are kept within ±this: far beyond any threshold, and never infinite. */
const LOG_ODDS_LIMIT = 50;

export function logOdds(p: number): number {
  return Math.log(p / (1 - p));
}

export function probabilityOf(logOddsValue: number): number {
  return 1 / (1 + Math.exp(-logOddsValue));
}

export const PRIOR_LOG_ODDS = logOdds(CHEAT_PRIOR);

/**
 * P(cheat) log-odds after one check. A failure multiplies the odds by P(fail | cheat) / P(fail | honest)
 * = (1 − miss) / falsePositive; a pass first decays the odds toward the prior, then multiplies them by
 * P(pass | cheat) / P(pass | honest) = miss / (1 − falsePositive).
 */
export function afterCheck(cheatLogOdds: number, passed: boolean, rates: CheckLikelihoods = MEASURED_LIKELIHOODS): number {
  const next = passed
    ? PRIOR_LOG_ODDS + CLEAN_CHECK_DECAY * (cheatLogOdds - PRIOR_LOG_ODDS) + Math.log(rates.missRate / (1 - rates.falsePositiveRate))
    : cheatLogOdds + Math.log((1 - rates.missRate) / rates.falsePositiveRate);
  return Math.max(-LOG_ODDS_LIMIT, Math.min(LOG_ODDS_LIMIT, next));
}

/** 1 − P(cheat). */
export function verificationFactor(cheatLogOdds: number): number {
  return 1 - probabilityOf(cheatLogOdds);
}
