/**
 * How much one check says about a node: the likelihoods the reputation's Bayes update uses. The only place they are
 * read from, so swapping in the verification bench's measured figures (the check verdict's exports) is a one-line
 * change here.
 *
 * These must come from the verification bench's data (`npm run bench -- verification`); the check verdict
 * (check-verdict.ts) exports the measured figures under these names. Until it does, these are the targets:
 * - false positives: the thresholds are calibrated to at most 1e-4 per honest check;
 * - misses: the hardest cheat to see (a Q4_K_M file claimed as F16) must be caught in ≥ 90 % of cases within
 *   100 jobs at a check rate of 0.1, i.e. 10 checks, so one check catches it at least 1 − 0.1^(1/10) ≈ 21 % of the
 *   time: a miss rate of at most 0.79, rounded up to 0.8. The weakest detection is the safe single figure.
 */
export const CHECK_FALSE_POSITIVE_RATE = 1e-4;
export const CHECK_MISS_RATE = 0.8;
