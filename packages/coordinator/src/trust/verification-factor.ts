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

/**
 * The least share of its jobs a cheater is assumed to cheat on. A node need not cheat every time, and the bench
 * measures the miss rate of a check on a cheated job, so P(a check fails | cheater) = share × (1 − miss). Assuming
 * one job in five keeps both updates conservative: a failure weighs 2,000:1 rather than 10,000:1 (fewer honest
 * nodes quarantined by a false positive), and a pass only 0.8:1 (a clean run clears a node slowly, and a node that
 * cheats now and then is not cleared by the jobs it ran honestly). A node cheating on fewer jobs gains less and is
 * still caught, more slowly.
 */
export const CHEAT_SHARE = 0.2;

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
 * P(cheat) log-odds after one check, with P(fail | cheater) = CHEAT_SHARE × (1 − miss). A failure multiplies the
 * odds by P(fail | cheater) / P(fail | honest) = P(fail | cheater) / falsePositive; a pass first decays the odds
 * toward the prior, then multiplies them by P(pass | cheater) / P(pass | honest) = (1 − P(fail | cheater)) /
 * (1 − falsePositive).
 */
export function afterCheck(cheatLogOdds: number, passed: boolean, rates: CheckLikelihoods = MEASURED_LIKELIHOODS): number {
  const failIfCheater = CHEAT_SHARE * (1 - rates.missRate);
  const next = passed
    ? PRIOR_LOG_ODDS + CLEAN_CHECK_DECAY * (cheatLogOdds - PRIOR_LOG_ODDS) + Math.log((1 - failIfCheater) / (1 - rates.falsePositiveRate))
    : cheatLogOdds + Math.log(failIfCheater / rates.falsePositiveRate);
  return Math.max(-LOG_ODDS_LIMIT, Math.min(LOG_ODDS_LIMIT, next));
}

/** 1 − P(cheat). */
export function verificationFactor(cheatLogOdds: number): number {
  return 1 - probabilityOf(cheatLogOdds);
}
