import { describe, expect, it } from "vitest";
import { maxOutside, poissonBinomialTailAbove, sampledVerdict } from "./sampled-check.js";

describe("the Poisson-binomial tail", () => {
  it("equals the binomial tail when every probability is the same", () => {
    // P(Binomial(4, 0.5) > 2) = (4 + 1) / 16
    expect(poissonBinomialTailAbove([0.5, 0.5, 0.5, 0.5], 2)).toBeCloseTo(5 / 16, 12);
    expect(poissonBinomialTailAbove([0.1, 0.2], 0)).toBeCloseTo(1 - 0.9 * 0.8, 12);
    expect(poissonBinomialTailAbove([], 0)).toBe(0);
  });

  it("gives the least count whose tail is within the budget", () => {
    expect(maxOutside([0, 0, 0], 1e-4)).toBe(0);
    expect(maxOutside([1, 1, 1], 1e-4)).toBe(3);
    const k = maxOutside(new Array(100).fill(0.01), 1e-4);
    expect(poissonBinomialTailAbove(new Array(100).fill(0.01), k)).toBeLessThanOrEqual(1e-4);
    expect(poissonBinomialTailAbove(new Array(100).fill(0.01), k - 1)).toBeGreaterThan(1e-4);
  });
});

const claim = (tokens: number[], usage = { promptTokens: 9, completionTokens: tokens.length }) => ({ outputTokens: tokens, usage, maxTokens: 64, finishReason: "stop" as const, topP: 1 });
const reference = (tokens: number[], rank: (i: number) => number, topMass: number) => ({ promptTokens: 9, positions: tokens.map((token, i) => ({ token, rank: rank(i), topMass })) });
const TOKENS = Array.from({ length: 32 }, (_, i) => 100 + i);

describe("sampled answers", () => {
  it("pass when their tokens are where an honest sampler's would be, even with a few outside the top 20", () => {
    expect(sampledVerdict(claim(TOKENS), reference(TOKENS, () => 3, 0.99)).passed).toBe(true);
    // 32 positions with 10 % outside mass each: a handful outside is honest.
    expect(sampledVerdict(claim(TOKENS), reference(TOKENS, (i) => (i % 8 === 0 ? 21 : 2), 0.9)).passed).toBe(true);
  });

  it("fail when a confident reference finds most tokens outside its top 20 (other weights, garbage)", () => {
    const verdict = sampledVerdict(claim(TOKENS), reference(TOKENS, () => 21, 0.99));
    expect(verdict.passed).toBe(false);
    expect(verdict.failures.map((f) => f.check)).toEqual(["top20"]);
    expect(verdict.stats).toMatchObject({ positions: 32, outsideTop20: 32 });
  });

  it("say nothing about a flat distribution, where an honest sampler lands anywhere", () => {
    expect(sampledVerdict(claim(TOKENS), reference(TOKENS, () => 21, 0.01)).passed).toBe(true);
  });

  it("fail inflated usage and a length finish before max_tokens, like greedy ones", () => {
    expect(sampledVerdict(claim(TOKENS, { promptTokens: 9000, completionTokens: 32 }), reference(TOKENS, () => 1, 0.99)).failures.map((f) => f.check)).toEqual(["usage"]);
    expect(sampledVerdict({ ...claim(TOKENS), finishReason: "length" }, reference(TOKENS, () => 1, 0.99)).failures.map((f) => f.check)).toEqual(["length"]);
  });

  it("fail one token outside the top 20 where the reference says no honest sampler can write one (a grammar forbids it)", () => {
    // Flat elsewhere (the Poisson bound alone would allow many outside tokens), but position 5's bound is 0.
    const ref = reference(TOKENS, (i) => (i === 5 ? 21 : 1), 0.01);
    const at5 = { ...ref, positions: ref.positions.map((p, i) => (i === 5 ? { ...p, topMass: 1 } : p)) };
    const verdict = sampledVerdict(claim(TOKENS), at5);
    expect(verdict.passed).toBe(false);
    expect(verdict.failures[0]).toMatchObject({ check: "top20", detail: expect.stringMatching(/cannot write one/) });
    expect(sampledVerdict(claim(TOKENS), ref).passed).toBe(true);
  });

  it("refuse scores for other tokens than the answer's", () => {
    expect(() => sampledVerdict(claim(TOKENS), reference([1, 2, 3], () => 1, 0.9))).toThrow(RangeError);
  });
});
