import { describe, expect, it } from "vitest";
import { firstPartDeadline, nextPartDeadline } from "./progress-deadline.js";

const limits = { firstPartFloorMs: 30_000, stallFloorMs: 15_000, slack: 8, slowestPrefillTokensPerSecond: 50 };

describe("firstPartDeadline", () => {
  it.each([
    ["an unmeasured node with a short prompt gets the floor", undefined, 100, 1, 30_000],
    ["a fast measured node still gets the floor", { ttftMs: 40 }, 100, 1, 30_000],
    ["a slow measured node gets slack × its own time to first token", { ttftMs: 5_000 }, 100, 1, 40_000],
    ["…times the jobs it is sharing its compute with", { ttftMs: 5_000 }, 100, 3, 120_000],
    ["a long prompt gets the slowest admissible prefill", undefined, 4_000, 1, 80_000],
    ["…shared with the node's other jobs", undefined, 4_000, 2, 160_000],
    ["a load of zero counts as one", { ttftMs: 5_000 }, 100, 0, 40_000],
  ])("%s", (_name, measured, promptTokens, load, allowance) => {
    expect(firstPartDeadline(1_000, { measured, promptTokens, load }, limits)).toBe(1_000 + allowance);
  });
});

describe("nextPartDeadline", () => {
  it.each([
    ["an unmeasured node gets the floor", undefined, 1, 15_000],
    ["a node measured at 0 tokens/s gets the floor", { tokensPerSecond: 0 }, 1, 15_000],
    ["a fast node gets the floor", { tokensPerSecond: 50 }, 1, 15_000],
    ["a very slow node gets slack token times", { tokensPerSecond: 0.25 }, 1, 32_000],
    ["…times its load", { tokensPerSecond: 0.25 }, 2, 64_000],
  ])("%s", (_name, measured, load, allowance) => {
    expect(nextPartDeadline(500, { measured, load }, limits)).toBe(500 + allowance);
  });
});
