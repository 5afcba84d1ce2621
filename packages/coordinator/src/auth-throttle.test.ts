import { describe, expect, it } from "vitest";
import { AuthThrottle } from "./auth-throttle.js";

describe("AuthThrottle", () => {
  const options = { maxFailures: 3, windowMs: 60_000, lockoutMs: 30_000 };

  it("locks an address out at the Nth failure within the window, with the seconds left", () => {
    const t = new AuthThrottle(options);
    expect(t.recordFailure("a", 0)).toBe(0);
    expect(t.recordFailure("a", 1_000)).toBe(0);
    expect(t.retryAfterSeconds("a", 1_500)).toBe(0);
    expect(t.recordFailure("a", 2_000)).toBe(30);
    expect(t.retryAfterSeconds("a", 2_000)).toBe(30);
    expect(t.retryAfterSeconds("a", 31_500)).toBe(1);
    expect(t.retryAfterSeconds("a", 32_000)).toBe(0);
  });

  it("keeps addresses apart", () => {
    const t = new AuthThrottle(options);
    for (let i = 0; i < 3; i++) t.recordFailure("a", i);
    expect(t.retryAfterSeconds("a", 10)).toBeGreaterThan(0);
    expect(t.retryAfterSeconds("b", 10)).toBe(0);
  });

  it("forgets failures once the window has passed", () => {
    const t = new AuthThrottle(options);
    t.recordFailure("a", 0);
    t.recordFailure("a", 1_000);
    expect(t.recordFailure("a", 61_000)).toBe(0); // a new window: this is its first failure
    expect(t.recordFailure("a", 62_000)).toBe(0);
    expect(t.recordFailure("a", 63_000)).toBe(30);
  });

  it("starts counting afresh after a lockout ends", () => {
    const t = new AuthThrottle(options);
    for (let i = 0; i < 3; i++) t.recordFailure("a", i);
    expect(t.retryAfterSeconds("a", 30_002)).toBe(0);
    expect(t.recordFailure("a", 30_010)).toBe(0);
    expect(t.recordFailure("a", 30_020)).toBe(0);
    expect(t.recordFailure("a", 30_030)).toBe(30);
  });

  it("stays bounded under a flood of distinct addresses", () => {
    const t = new AuthThrottle({ ...options, maxEntries: 100 });
    for (let i = 0; i < 1_000; i++) t.recordFailure(`addr-${i}`, i);
    expect(t.size).toBeLessThanOrEqual(101);
  });
});
