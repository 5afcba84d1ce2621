import { describe, expect, it } from "vitest";
import { relativeError } from "./logits-error.js";

describe("relativeError", () => {
  it("is the largest difference over the reference's largest magnitude", () => {
    expect(relativeError([1, 2, -4], [1, 2.5, -4])).toBeCloseTo(0.5 / 4, 12);
    expect(relativeError(new Float32Array([3, -3]), new Float32Array([3, -3]))).toBe(0);
  });

  it("never passes NaN as agreement", () => {
    expect(relativeError([Number.NaN, 1], [1, 1])).toBeNaN();
    expect(relativeError([1, 1], [1, Number.NaN])).toBeNaN();
  });

  it("refuses arrays of different lengths and an all-zero reference", () => {
    expect(() => relativeError([1, 2], [1])).toThrow(/2 values against 1/);
    expect(() => relativeError([1, 2], [0, 0])).toThrow(/all zeros/);
  });
});
