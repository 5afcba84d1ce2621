import { describe, expect, it } from "vitest";
import { logSumExp, rankOf, topK } from "./log-softmax.js";
import { denseRow, partialRow, scoreRows } from "./score-rows.js";
import { TOP_K_SCORED } from "./types.js";

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomRow(n: number, seed: number, scale = 16): Float32Array {
  const r = seeded(seed);
  // Quantised values so that ties occur and the tie rule is exercised.
  return Float32Array.from({ length: n }, () => Math.round((r() - 0.5) * scale * 8) / 8);
}

describe("log-softmax", () => {
  it("log-probabilities sum to 1 and do not overflow on large logits", () => {
    const row = Float32Array.from([1000, 999, 998, -5]);
    const z = logSumExp(row);
    expect(Number.isFinite(z)).toBe(true);
    const total = Array.from(row).reduce((s, v) => s + Math.exp(v - z), 0);
    expect(total).toBeCloseTo(1, 12);
  });

  it("ranks ties by lower token id first, so the greedy argmax has rank 1", () => {
    const row = [3, 7, 7, 1, 7];
    expect(rankOf(row, 1)).toBe(1);
    expect(rankOf(row, 2)).toBe(2);
    expect(rankOf(row, 4)).toBe(3);
    expect(rankOf(row, 0)).toBe(4);
    expect(rankOf(row, 3)).toBe(5);
  });

  it("topK gives the same tokens in the same order as a full sort (ties: lower id first)", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const row = randomRow(5000, seed);
      const z = logSumExp(row);
      const expected = Array.from(row, (v, i) => [i, v] as const)
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, 20)
        .map(([i]) => i);
      const got = topK(row, 20, z);
      expect(got.map((t) => t.token)).toEqual(expected);
      for (const t of got) expect(t.logprob).toBe(row[t.token] - z);
      expect(got.map((t) => rankOf(row, t.token))).toEqual(got.map((_, i) => i + 1));
    }
  });

  it("a partial row (top logits + total weight, as node-llama-cpp gives it) scores like the dense row", () => {
    const row = randomRow(3000, 9);
    const dense = denseRow(row);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let weight = 0;
    for (const v of row) weight += Math.exp(v - max);
    const kept = dense.top(TOP_K_SCORED).map((t) => [t.token, row[t.token]] as [number, number]);
    const outside = dense.top(200)[150].token;
    kept.push([outside, row[outside]]);
    const partial = partialRow(kept, weight);
    expect(partial.top(TOP_K_SCORED).map((t) => t.token)).toEqual(dense.top(TOP_K_SCORED).map((t) => t.token));
    for (const t of dense.top(TOP_K_SCORED)) {
      expect(partial.logprob(t.token)).toBeCloseTo(t.logprob, 9);
      expect(partial.rank(t.token)).toBe(dense.rank(t.token));
    }
    expect(partial.logprob(outside)).toBeCloseTo(dense.logprob(outside), 9);
    // Outside the top list a partial row only knows "not in the top 20".
    expect(dense.rank(outside)).toBe(151);
    expect(partial.rank(outside)).toBe(TOP_K_SCORED + 1);
    expect(() => partial.logprob(row.length + 5)).toThrow(RangeError);
  });

  it("scoreRows scores each output token on the row before it and EOS on the row after the last", () => {
    const rows = [
      [0, 5, 1, 2],
      [3, 0, 0, 9],
      [0, 0, 8, 1],
    ];
    const s = scoreRows(7, [1, 0], 2, (i) => denseRow(rows[i]));
    expect(s.promptTokens).toBe(7);
    expect(s.positions.map((p) => [p.token, p.rank])).toEqual([
      [1, 1],
      [0, 2],
    ]);
    expect(s.positions[0].top.map((t) => t.token)).toEqual([1, 3, 2, 0]);
    expect(s.eos).toMatchObject({ token: 2, logprob: 8 - logSumExp(rows[2]), rank: 1 });
    // EOS's row carries its top list too (a constrained answer's EOS is ranked among what its grammar allows).
    expect(s.eos.top?.map((t) => t.token)).toEqual([2, 3, 0, 1]);
  });
});
