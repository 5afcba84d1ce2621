import { describe, expect, it } from "vitest";
import { FIRST_COOLDOWN_MS, MAX_COOLDOWN_MS, NO_COOLDOWN, REPEAT_WINDOW_MS, afterOffence, isCoolingDown, type CooldownState } from "./cooldown.js";

const H = 3_600_000;
const T0 = 1_000_000_000;

/** Offences at these offsets (ms from T0), in order; the cooldown length each one started (0 = none). */
function run(offsets: number[]): number[] {
  let state: CooldownState = NO_COOLDOWN;
  return offsets.map((at) => {
    const next = afterOffence(state, T0 + at);
    state = next.state;
    return next.started ? next.state.until! - (T0 + at) : 0;
  });
}

describe("cooldowns", () => {
  it.each<[string, number[], number[]]>([
    ["a first offence: one hour", [0], [H]],
    ["a repeat after the cooldown, within 7 days: doubled", [0, 2 * H], [H, 2 * H]],
    ["repeats keep doubling", [0, 2 * H, 5 * H, 10 * H], [H, 2 * H, 4 * H, 8 * H]],
    ["an offence during a cooldown is the same incident", [0, 1000, 30 * 60 * 1000], [H, 0, 0]],
    ["a repeat more than 7 days after the last offence starts over", [0, REPEAT_WINDOW_MS + 1], [H, H]],
    ["a repeat exactly 7 days later still counts", [0, REPEAT_WINDOW_MS], [H, 2 * H]],
  ])("%s", (_why, offsets, lengths) => {
    expect(run(offsets)).toEqual(lengths);
  });

  it("never lasts longer than the repeat window", () => {
    const offsets: number[] = [];
    let at = 0;
    for (let i = 0; i < 12; i++) {
      offsets.push(at);
      at += Math.min(MAX_COOLDOWN_MS, FIRST_COOLDOWN_MS * 2 ** i) + 1;
    }
    const lengths = run(offsets);
    expect(Math.max(...lengths)).toBe(MAX_COOLDOWN_MS);
    expect(lengths.slice(0, 8)).toEqual([1, 2, 4, 8, 16, 32, 64, 128].map((h) => h * H));
  });

  it("is over at its end", () => {
    const { state } = afterOffence(NO_COOLDOWN, T0);
    expect(isCoolingDown(state, T0 + H - 1)).toBe(true);
    expect(isCoolingDown(state, T0 + H)).toBe(false);
    expect(isCoolingDown(NO_COOLDOWN, T0)).toBe(false);
  });
});
