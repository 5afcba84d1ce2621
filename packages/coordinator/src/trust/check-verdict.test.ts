import { describe, expect, it } from "vitest";
import {
  binomialTailAbove,
  CALIBRATED_THRESHOLDS,
  CHECK_FALSE_POSITIVE_RATE,
  CHECK_MISS_RATE,
  CHECK_MISS_RATE_BY_CHEAT,
  checkVerdict,
  FALSE_POSITIVE_RATE_BY_CHECK,
  maxTop1Mismatches,
  STATISTIC_POSITIONS,
  type ClaimedResult,
  type ReferenceScoring,
  type VerdictThresholds,
} from "./check-verdict.js";

const thresholds: VerdictThresholds = { maxRank: 20, top1MismatchRate: 1e-3, top1FalsePositiveRate: 5e-5, maxMeanLogprobGap: 0.1 };

/** An honest 8-token greedy answer and the reference's scores of it (ranks 1, log-probabilities 0.01 apart). */
function honest(n = 8): { claim: ClaimedResult; ref: ReferenceScoring } {
  const tokens = Array.from({ length: n }, (_, i) => 100 + i);
  const logprobs = tokens.map((_, i) => -0.1 - 0.05 * (i % 3));
  return {
    claim: { outputTokens: tokens, finishReason: "length", usage: { promptTokens: 12, completionTokens: n }, maxTokens: n, greedy: true, logprobs },
    ref: { promptTokens: 12, positions: tokens.map((token, i) => ({ token, logprob: logprobs[i] + 0.01, rank: 1 })), eos: { logprob: -40, rank: 5000 } },
  };
}

type Case = [name: string, edit: (c: ClaimedResult, r: ReferenceScoring) => void, failed: string[]];

const cases: Case[] = [
  ["an honest greedy answer passes", () => {}, []],
  ["one flip of the first two tokens (an honest near-tie) passes", (_, r) => void (r.positions[3].rank = 2), []],
  ["a token outside the top 20", (_, r) => void (r.positions[5].rank = 21), ["top20"]],
  ["a token at rank 20 is still in the top 20 (but not greedy's first choice)", (_, r) => void (r.positions[5].rank = 20), []],
  [
    "stop where EOS is implausible (a truncated answer)",
    (c) => {
      c.finishReason = "stop";
    },
    ["eos"],
  ],
  [
    "stop where EOS is the reference's first choice",
    (c, r) => {
      c.finishReason = "stop";
      r.eos = { logprob: -0.2, rank: 1 };
    },
    [],
  ],
  [
    "stop before max_tokens where EOS is plausible",
    (c, r) => {
      c.finishReason = "stop";
      c.maxTokens = 64;
      r.eos = { logprob: -1.5, rank: 3 };
    },
    [],
  ],
  ["length short of max_tokens", (c) => void (c.maxTokens = 9), ["length"]],
  [
    "more tokens than max_tokens",
    (c, r) => {
      c.maxTokens = 7;
      r.eos = { logprob: -0.1, rank: 1 };
      c.finishReason = "stop";
    },
    ["length"],
  ],
  ["inflated completion tokens", (c) => void (c.usage.completionTokens = 9_007_199_254_740_991), ["usage"]],
  ["inflated prompt tokens", (c) => void (c.usage.promptTokens = 13), ["usage"]],
  [
    "too many top-1 mismatches for an honest greedy node",
    (_, r) => {
      for (const i of [0, 2, 4]) r.positions[i].rank = 2;
    },
    ["top1"],
  ],
  [
    "the same mismatches from a sampling (non-greedy) node are not a top-1 failure",
    (c, r) => {
      c.greedy = false;
      for (const i of [0, 2, 4]) r.positions[i].rank = 2;
    },
    [],
  ],
  ["log-probabilities of another model", (c) => void (c.logprobs = c.logprobs!.map((l) => l - 0.6)), ["logprob"]],
  ["a log-probability that is not a number", (c) => void (c.logprobs = c.logprobs!.map((l, i) => (i === 2 ? Number.NaN : l))), ["logprob"]],
  ["no claimed log-probabilities: the gap check is skipped", (c) => void delete c.logprobs, []],
  [
    "garbage: every check that can fail does",
    (c, r) => {
      for (const p of r.positions) p.rank = 9000;
      c.logprobs = c.logprobs!.map(() => 0);
      for (const p of r.positions) p.logprob = -30;
      c.usage.completionTokens = 100;
    },
    ["top20", "usage", "top1", "logprob"],
  ],
];

describe("checkVerdict", () => {
  it.each(cases)("%s", (_name, edit, failed) => {
    const { claim, ref } = honest();
    edit(claim, ref);
    const verdict = checkVerdict(claim, ref, thresholds);
    expect(verdict.failures.map((f) => f.check)).toEqual(failed);
    expect(verdict.passed).toBe(failed.length === 0);
    for (const f of verdict.failures) expect(f.detail.length).toBeGreaterThan(0);
  });

  it("reports its statistics, and the top-1 limit for the length", () => {
    const { claim, ref } = honest(8);
    ref.positions[1].rank = 2;
    const v = checkVerdict(claim, ref, thresholds);
    expect(v.stats.positions).toBe(8);
    expect(v.stats.top1Mismatches).toBe(1);
    expect(v.stats.top1Limit).toBe(maxTop1Mismatches(8, 1e-3, 5e-5));
    expect(v.stats.meanLogprobGap).toBeCloseTo(0.01, 12);
    expect(v.stats.outsideTop20).toBe(0);
  });

  it("looks at no more than 256 positions for the statistics but at all of them for the hard checks", () => {
    const { claim, ref } = honest(300);
    for (let i = STATISTIC_POSITIONS; i < 300; i++) {
      ref.positions[i].rank = 2;
      claim.logprobs = claim.logprobs!.map((l, j) => (j >= STATISTIC_POSITIONS ? l - 5 : l));
    }
    const v = checkVerdict(claim, ref, thresholds);
    expect(v.stats.positions).toBe(STATISTIC_POSITIONS);
    expect(v.passed).toBe(true);
    ref.positions[290].rank = 25;
    expect(checkVerdict(claim, ref, thresholds).failures.map((f) => f.check)).toEqual(["top20"]);
  });

  it("refuses a reference that scored other tokens than the node sent", () => {
    const { claim, ref } = honest();
    const other = { ...ref, positions: ref.positions.map((p, i) => (i === 2 ? { ...p, token: 7 } : p)) };
    expect(() => checkVerdict(claim, other, thresholds)).toThrow(RangeError);
    expect(() => checkVerdict({ ...claim, outputTokens: claim.outputTokens.slice(1) }, ref, thresholds)).toThrow(RangeError);
  });

  it("an empty answer that stops where EOS is the first choice passes", () => {
    const claim: ClaimedResult = { outputTokens: [], finishReason: "stop", usage: { promptTokens: 4, completionTokens: 0 }, maxTokens: 16, greedy: true, logprobs: [] };
    const v = checkVerdict(claim, { promptTokens: 4, positions: [], eos: { logprob: -0.01, rank: 1 } }, thresholds);
    expect(v.passed).toBe(true);
    expect(v.stats.top1Limit).toBeNull();
  });
});

describe("top-1 limit", () => {
  it("binomial tail matches hand-computed values", () => {
    // P(Bin(2, 0.5) > 0) = 0.75; P(Bin(10, 0.1) > 1) = 1 - 0.9^10 - 10*0.1*0.9^9.
    expect(binomialTailAbove(2, 0.5, 0)).toBeCloseTo(0.75, 12);
    expect(binomialTailAbove(10, 0.1, 1)).toBeCloseTo(1 - 0.9 ** 10 - 0.9 ** 9, 12);
    expect(binomialTailAbove(10, 0.1, 10)).toBe(0);
    // Below the mean (the first terms underflow): P(Bin(30000, 0.5) > 53) is 1; P(Bin(1000, 0.3) > 299) ≈ 0.5.
    expect(binomialTailAbove(30_000, 0.5, 53)).toBe(1);
    expect(binomialTailAbove(1000, 0.3, 299)).toBeCloseTo(0.5, 1);
    // Against the sum of the probability mass function built from j = 0 up.
    let pmf = 0.98 ** 200;
    let upTo5 = 0;
    for (let j = 0; j <= 5; j++) {
      upTo5 += pmf;
      pmf *= ((200 - j) / (j + 1)) * (0.02 / 0.98);
    }
    expect(binomialTailAbove(200, 0.02, 5)).toBeCloseTo(1 - upTo5, 12);
  });

  it("is the smallest count an honest node exceeds no more often than the budget, growing with length", () => {
    for (const n of [1, 16, 32, 256]) {
      const k = maxTop1Mismatches(n, 1e-3, 5e-5);
      expect(binomialTailAbove(n, 1e-3, k)).toBeLessThanOrEqual(5e-5);
      if (k > 0) expect(binomialTailAbove(n, 1e-3, k - 1)).toBeGreaterThan(5e-5);
    }
    expect(maxTop1Mismatches(256, 1e-3, 5e-5)).toBeGreaterThanOrEqual(maxTop1Mismatches(16, 1e-3, 5e-5));
  });
});

describe("calibrated constants", () => {
  it("with the calibrated thresholds a 16-token honest answer may show 2 near-tie flips and a 0.03 gap, not 3 flips", () => {
    const { claim, ref } = honest(16);
    ref.positions[3].rank = 2;
    ref.positions[11].rank = 2;
    claim.logprobs = ref.positions.map((p) => p.logprob - 0.03);
    expect(checkVerdict(claim, ref).passed).toBe(true);
    ref.positions[12].rank = 2;
    expect(checkVerdict(claim, ref).failures.map((f) => f.check)).toEqual(["top1"]);
    claim.logprobs = ref.positions.map((p) => p.logprob - 0.06);
    expect(checkVerdict(claim, ref).failures.map((f) => f.check)).toEqual(["top1", "logprob"]);
  });

  it("the verdict's false-positive rate covers its checks' and stays within the issue's 1e-4", () => {
    const sum = Object.values(FALSE_POSITIVE_RATE_BY_CHECK).reduce((a, b) => a + b, 0);
    expect(CHECK_FALSE_POSITIVE_RATE).toBeGreaterThanOrEqual(sum);
    expect(CHECK_FALSE_POSITIVE_RATE).toBeLessThanOrEqual(1e-4);
    expect(CALIBRATED_THRESHOLDS.top1FalsePositiveRate).toBe(FALSE_POSITIVE_RATE_BY_CHECK.top1);
  });

  it("miss rates are probabilities and the single figure is the worst of them", () => {
    for (const v of Object.values(CHECK_MISS_RATE_BY_CHEAT)) expect(v >= 0 && v <= 1).toBe(true);
    expect(CHECK_MISS_RATE).toBe(Math.max(...Object.values(CHECK_MISS_RATE_BY_CHEAT)));
  });
});
