import { describe, expect, it } from "vitest";
import { SPEED_FACTOR_FLOOR, type SpeedSample, speedFactors } from "./speed-factor.js";

const s = (nodeId: string, tokensPerSecond: number, overrides: Partial<SpeedSample> = {}): SpeedSample => ({
  nodeId,
  model: "m",
  hardwareClass: ">=24gb",
  tokensPerSecond,
  jobs: 10,
  ...overrides,
});

describe("speed factor", () => {
  it.each<[string, SpeedSample[], Record<string, number>]>([
    ["as fast as its class: 1", [s("a", 50), s("b", 50), s("c", 50)], { a: 1, b: 1, c: 1 }],
    ["faster than its class earns no bonus (routing already prices speed)", [s("a", 100), s("b", 50), s("c", 50)], { a: 1 }],
    ["slower than its class: its share of the class median", [s("a", 40), s("b", 50), s("c", 50), s("d", 60)], { a: 40 / 50 }],
    ["far slower: floored", [s("a", 5), s("b", 50), s("c", 50)], { a: SPEED_FACTOR_FLOOR }],
    ["a class with too few measured nodes gives no comparison", [s("a", 5), s("b", 50)], { a: 1 }],
    ["too few jobs behind a figure: not counted", [s("a", 5, { jobs: 2 }), s("b", 50), s("c", 50)], { a: 1 }],
    [
      "compared only within its own hardware class",
      [s("cpu1", 5, { hardwareClass: "cpu" }), s("cpu2", 5, { hardwareClass: "cpu" }), s("cpu3", 5, { hardwareClass: "cpu" }), s("g1", 50), s("g2", 50), s("g3", 50)],
      { cpu1: 1, g1: 1 },
    ],
    [
      "and per model, weighted by jobs",
      [
        s("a", 25, { jobs: 30 }),
        s("b", 50),
        s("c", 50),
        s("a", 10, { model: "n", jobs: 10 }),
        s("b", 10, { model: "n" }),
        s("c", 10, { model: "n" }),
      ],
      { a: (0.5 * 30 + 1 * 10) / 40 },
    ],
  ])("%s", (_why, samples, expected) => {
    const factors = speedFactors(samples);
    for (const [node, factor] of Object.entries(expected)) expect(factors.get(node) ?? 1).toBeCloseTo(factor, 10);
  });

  it("a node claiming a GPU class and decoding like a CPU is marked down", () => {
    const factors = speedFactors([s("liar", 6), s("g1", 48), s("g2", 52), s("g3", 50)]);
    expect(factors.get("liar")).toBe(SPEED_FACTOR_FLOOR);
  });
});
