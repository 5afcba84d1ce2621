import { describe, expect, it } from "vitest";
import { COMPLETION_WINDOW, OutcomeWindow, completionFactor, completionFactorForRate, completionRateBound } from "./completion-tier.js";

describe("completion ladder", () => {
  it.each([
    [1, 1.0],
    [0.996, 1.0],
    [0.995, 1.0],
    [0.994, 0.9],
    [0.98, 0.9],
    [0.979, 0.8],
    [0.96, 0.8],
    [0.95, 0.7],
    [0.9, 0.6],
    [0.8, 0.5],
    [0.5, 0.4],
    [0.2, 0.3],
    [0, 0.3],
  ])("a rate of %f rates %f", (rate, factor) => {
    expect(completionFactorForRate(rate)).toBe(factor);
  });
});

describe("completion factor over a window", () => {
  it.each([
    // [completed, total, factor, why]
    [0, 0, 1.0, "a node with no outcomes is not judged"],
    [10, 10, 1.0, "a clean start"],
    [9, 10, 0.9, "one failure in the first ten is mostly noise: 0.9, not the 0.6 a raw 90 % would give"],
    [19, 20, 0.9, "one in twenty"],
    [199, 200, 1.0, "one failure in a full window stays at the top"],
    [197, 200, 0.9, "three in a full window (98.5 %)"],
    [190, 200, 0.8, "5 % failures over a full window"],
    [180, 200, 0.7, "10 % failures over a full window"],
    [100, 200, 0.4, "half"],
    [0, 200, 0.3, "nothing completes: the floor, still above zero"],
  ])("%i of %i completed rates %f (%s)", (completed, total, factor) => {
    expect(completionFactor(completed, total)).toBe(factor);
  });

  it("the bound never lies below the measured rate and tightens toward it as outcomes accumulate", () => {
    for (const total of [5, 20, 200]) expect(completionRateBound(total * 0.9, total)).toBeGreaterThan(0.9);
    expect(completionRateBound(180, 200) - 0.9).toBeLessThan(completionRateBound(18, 20) - 0.9);
  });
});

describe("OutcomeWindow", () => {
  it("keeps the last 200 outcomes, so old failures age out", () => {
    const w = new OutcomeWindow();
    for (let i = 0; i < 10; i++) w.push(false);
    expect(w.factor()).toBe(0.3);
    for (let i = 0; i < COMPLETION_WINDOW; i++) w.push(true);
    expect(w.total).toBe(COMPLETION_WINDOW);
    expect(w.completed).toBe(COMPLETION_WINDOW);
    expect(w.factor()).toBe(1);
  });

  it("round-trips through its stored text, oldest first", () => {
    const w = new OutcomeWindow();
    for (const o of [true, false, true, true]) w.push(o);
    expect(w.toString()).toBe("1011");
    const back = OutcomeWindow.parse(w.toString());
    expect([back.completed, back.total, back.rate]).toEqual([3, 4, 0.75]);
  });

  it("a stored window longer than the size keeps its newest outcomes", () => {
    const w = OutcomeWindow.parse("0".repeat(50) + "1".repeat(200));
    expect([w.completed, w.total]).toEqual([200, 200]);
  });
});
