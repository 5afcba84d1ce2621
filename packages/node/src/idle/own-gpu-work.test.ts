import { describe, expect, it } from "vitest";
import { recentOwnWork } from "./own-gpu-work.js";

describe("recentOwnWork: when a whole-device GPU reading may be this daemon's own", () => {
  it("while a job runs, and for the tail after the last time one was seen; never before any", () => {
    let t = 0;
    let jobs = 0;
    const own = recentOwnWork(() => jobs > 0, () => t, 3_000);
    expect(own()).toBe(false);
    jobs = 1;
    t = 1_000;
    expect(own()).toBe(true);
    // The job ends between polls: the reading still averages it in for a moment.
    jobs = 0;
    t = 2_000;
    expect(own()).toBe(true);
    t = 3_999;
    expect(own()).toBe(true);
    t = 4_000;
    expect(own()).toBe(false);
  });
});
