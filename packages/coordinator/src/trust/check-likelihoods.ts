/**
 * How much one check says about a node: the likelihoods the reputation's Bayes update uses, read from this one place.
 * They are the verification bench's measurements (`npm run bench -- verification`), exported by the check verdict:
 * the per-check false-positive budget the thresholds were calibrated to, and the worst miss rate over the cheats the
 * bench plays, each as a 95 % upper bound (design.md, "Verification").
 */
export { CHECK_FALSE_POSITIVE_RATE, CHECK_MISS_RATE } from "./check-verdict.js";
