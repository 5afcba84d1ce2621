/**
 * The verdict of one check (trust design.md, "Verification"): a node's claimed result against a reference node's
 * teacher-forced scores of the node's own tokens. Pure: data in, verdict out.
 *
 * Hard checks (an honest node never fails them, whatever its engine):
 * - `top20`: every output token is in the reference's top 20 at its position;
 * - `eos`: where the node said `stop`, the end-of-sequence token is in the reference's top 20 right after its
 *   last token (an honest node stopped because EOS was its own first choice);
 * - `length`: where the node said `length` it produced exactly max_tokens, and never more than max_tokens;
 * - `usage`: the claimed prompt and completion token counts equal what the reference evaluated and scored.
 * Statistical checks, over the first STATISTIC_POSITIONS positions, thresholds from calibration:
 * - `top1`: the number of positions where a greedy node's token is not the reference's first choice;
 * - `logprob`: the mean |claimed − reference| log-probability of the chosen tokens (where the node sent them).
 *
 * The calibration data are in ./calibration-verification.json, the method and figures in design.md.
 */

/** What the node returned, as the coordinator relayed it. */
export interface ClaimedResult {
  outputTokens: readonly number[];
  finishReason: "stop" | "length";
  usage: { promptTokens: number; completionTokens: number };
  maxTokens: number;
  /** Temperature 0: every token claims to be the model's first choice, so `top1` applies. */
  greedy: boolean;
  /** The node's log-probability of each of its tokens; absent where its backend exposes none (`logprob` skipped). */
  logprobs?: readonly number[];
}

/** The reference's scores of the node's tokens (the shape @tessera/node's verification engines return). */
export interface ReferenceScoring {
  promptTokens: number;
  positions: ReadonlyArray<{ token: number; logprob: number; rank: number }>;
  /** EOS at the position after the last output token. */
  eos: { logprob: number; rank: number };
}

export type CheckName = "top20" | "eos" | "length" | "usage" | "top1" | "logprob";

export interface CheckFailure {
  check: CheckName;
  /** Human-readable figures for logs and the operator's view; never parsed. */
  detail: string;
}

export interface Verdict {
  passed: boolean;
  failures: CheckFailure[];
  stats: {
    /** Positions the statistical checks looked at. */
    positions: number;
    outsideTop20: number;
    top1Mismatches: number;
    /** Most mismatches a greedy honest node may show at this length (null: not greedy, check skipped). */
    top1Limit: number | null;
    /** Mean |claimed − reference| log-probability (null: no claimed log-probabilities, check skipped). */
    meanLogprobGap: number | null;
  };
}

export interface VerdictThresholds {
  /** A token must rank at most this under the reference (and so must EOS where the node stopped). */
  maxRank: number;
  /** Upper confidence bound of the per-position top-1 mismatch rate between honest engines. */
  top1MismatchRate: number;
  /** The false-positive budget of the `top1` check; its limit is the binomial quantile at this tail. */
  top1FalsePositiveRate: number;
  /** Largest mean |claimed − reference| log-probability an honest node shows at this false-positive rate. */
  maxMeanLogprobGap: number;
}

/** The statistical checks look at up to this many positions (hard checks look at all). */
export const STATISTIC_POSITIONS = 256;

/**
 * From calibration (design.md "Verification", data in ./calibration-verification.json): 1 340 honest jobs, 42 274
 * positions, on different engines (embedded llama.cpp ↔ stage runtime on one F16 file, both directions; llama.cpp at
 * 2 threads against 1), on different CPUs' kernels (embedded on this CPU's ggml zen4 variant ↔ llama-server on the
 * AVX2-only haswell variant, both directions) and a file with frequent honest stops. Top-1: 75 mismatches, 95 % upper
 * bound of the rate 2.15e-3, rounded up. Log-probability gap: largest honest position 0.030, largest job mean
 * 0.0047; the fitted tail gives 0.048 at 256 · P(one position > t) = 5e-5, rounded up.
 */
export const CALIBRATED_THRESHOLDS: Readonly<VerdictThresholds> = Object.freeze({
  maxRank: 20,
  top1MismatchRate: 2.2e-3,
  top1FalsePositiveRate: 5e-5,
  maxMeanLogprobGap: 0.05,
});

/**
 * P(a check fails | honest node), per check and for the whole verdict (a union bound over the two statistical
 * checks; the hard checks showed no failure in any honest job and are exact in principle). For the reputation's
 * Bayes update. Source: ./calibration-verification.json and design.md "Verification" (0 of 5 000 honest bench jobs
 * and 0 of 1 340 calibration jobs failed).
 */
export const FALSE_POSITIVE_RATE_BY_CHECK: Readonly<Record<CheckName, number>> = Object.freeze({
  top20: 0,
  eos: 0,
  length: 0,
  usage: 0,
  top1: 5e-5,
  logprob: 5e-5,
});
export const CHECK_FALSE_POSITIVE_RATE = 1e-4;

export type CheatKind = "swap" | "quant" | "garbage" | "truncate" | "usage";

/**
 * P(a check passes | the node cheats this way), from `npm run bench -- verification` (design.md "Verification" has
 * the three runs): no cheating job passed its check in 300 per cheat, so each figure is the 95 % upper bound of a
 * rate with 0 events in 300 trials, 1 − 0.05^(1/300) ≈ 0.01, not 0: a Bayes update must never treat a pass as proof
 * of honesty. `quant_no_logprobs` is a Q4_K_M node whose backend sends no log-probabilities.
 */
const NO_MISS_IN_300 = 1 - 0.05 ** (1 / 300);
export const CHECK_MISS_RATE_BY_CHEAT: Readonly<Record<CheatKind | "quant_no_logprobs", number>> = Object.freeze({
  swap: NO_MISS_IN_300,
  quant: NO_MISS_IN_300,
  quant_no_logprobs: NO_MISS_IN_300,
  garbage: NO_MISS_IN_300,
  truncate: NO_MISS_IN_300,
  usage: NO_MISS_IN_300,
});
/** The worst measured miss rate over the cheats: the safe single figure for a Bayes update. */
export const CHECK_MISS_RATE = Math.max(...Object.values(CHECK_MISS_RATE_BY_CHEAT));

/** ln C(n, k), exact enough for n ≤ a few thousand. */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log((n - k + i) / i);
  return s;
}

/**
 * P(Binomial(n, p) > k), summed upward from k + 1 with the ratio of successive terms until they no longer count:
 * O(terms), accurate for the tiny tails the thresholds live in (no 1 − CDF cancellation).
 */
export function binomialTailAbove(n: number, p: number, k: number): number {
  if (k >= n || p <= 0) return 0;
  if (k < 0 || p >= 1) return 1;
  const ratio = p / (1 - p);
  if (k + 1 < n * p) {
    // Below the mean the upper tail is most of the mass: 1 − P(≤ k), summed downward from k the same way.
    let term = Math.exp(logChoose(n, k) + k * Math.log(p) + (n - k) * Math.log1p(-p));
    let lower = 0;
    for (let j = k; j >= 0 && term > 0; j--) {
      lower += term;
      term = (term * j) / ((n - j + 1) * ratio);
      if (term < lower * 1e-17) break;
    }
    return Math.max(0, 1 - lower);
  }
  let term = Math.exp(logChoose(n, k + 1) + (k + 1) * Math.log(p) + (n - k - 1) * Math.log1p(-p));
  let tail = 0;
  for (let j = k + 1; j <= n; j++) {
    tail += term;
    const next = (term * (n - j) * ratio) / (j + 1);
    // Past the mode the terms fall geometrically; stop once they are negligible against the sum.
    if (j > n * p && next < tail * 1e-17) break;
    term = next;
  }
  return Math.min(1, tail);
}

/** The smallest k with P(Binomial(n, rate) > k) ≤ falsePositiveRate: an honest node shows more than k rarely enough. */
export function maxTop1Mismatches(n: number, rate: number, falsePositiveRate: number): number {
  for (let k = 0; k < n; k++) if (binomialTailAbove(n, rate, k) <= falsePositiveRate) return k;
  return n;
}

export function checkVerdict(claim: ClaimedResult, reference: ReferenceScoring, thresholds: VerdictThresholds = CALIBRATED_THRESHOLDS): Verdict {
  const out = claim.outputTokens;
  if (reference.positions.length !== out.length) {
    throw new RangeError(`the reference scored ${reference.positions.length} positions for ${out.length} output tokens`);
  }
  for (let i = 0; i < out.length; i++) {
    if (reference.positions[i].token !== out[i]) throw new RangeError(`the reference scored token ${reference.positions[i].token} at position ${i}, the node sent ${out[i]}`);
  }
  if (claim.logprobs && claim.logprobs.length !== out.length) {
    throw new RangeError(`the node sent ${claim.logprobs.length} log-probabilities for ${out.length} output tokens`);
  }
  const failures: CheckFailure[] = [];

  const outside = reference.positions.filter((p) => p.rank > thresholds.maxRank);
  if (outside.length > 0) {
    const first = reference.positions.findIndex((p) => p.rank > thresholds.maxRank);
    failures.push({ check: "top20", detail: `${outside.length} of ${out.length} tokens outside the reference's top ${thresholds.maxRank} (first at position ${first})` });
  }
  if (claim.finishReason === "stop" && reference.eos.rank > thresholds.maxRank) {
    failures.push({ check: "eos", detail: `stopped after ${out.length} tokens where the reference ranks EOS ${reference.eos.rank} (log-probability ${reference.eos.logprob.toFixed(2)})` });
  }
  if (out.length > claim.maxTokens) {
    failures.push({ check: "length", detail: `${out.length} tokens for max_tokens ${claim.maxTokens}` });
  } else if (claim.finishReason === "length" && out.length !== claim.maxTokens) {
    failures.push({ check: "length", detail: `finish reason length after ${out.length} tokens, max_tokens ${claim.maxTokens}` });
  }
  if (claim.usage.completionTokens !== out.length || claim.usage.promptTokens !== reference.promptTokens) {
    failures.push({
      check: "usage",
      detail: `claimed ${claim.usage.promptTokens} prompt + ${claim.usage.completionTokens} completion tokens, the reference counts ${reference.promptTokens} + ${out.length}`,
    });
  }

  const n = Math.min(out.length, STATISTIC_POSITIONS);
  let mismatches = 0;
  for (let i = 0; i < n; i++) if (reference.positions[i].rank !== 1) mismatches++;
  let top1Limit: number | null = null;
  if (claim.greedy && n > 0) {
    top1Limit = maxTop1Mismatches(n, thresholds.top1MismatchRate, thresholds.top1FalsePositiveRate);
    if (mismatches > top1Limit) failures.push({ check: "top1", detail: `${mismatches} of ${n} greedy tokens are not the reference's first choice (an honest node shows at most ${top1Limit})` });
  }
  let meanGap: number | null = null;
  if (claim.logprobs && n > 0) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.abs(claim.logprobs[i] - reference.positions[i].logprob);
    meanGap = sum / n;
    // NaN (a non-number sent as a log-probability) fails too.
    if (!(meanGap <= thresholds.maxMeanLogprobGap)) {
      failures.push({ check: "logprob", detail: `mean |claimed − reference| log-probability ${meanGap.toFixed(4)} over ${n} tokens (limit ${thresholds.maxMeanLogprobGap})` });
    }
  }
  return {
    passed: failures.length === 0,
    failures,
    stats: { positions: n, outsideTop20: outside.length, top1Mismatches: mismatches, top1Limit, meanLogprobGap: meanGap },
  };
}
