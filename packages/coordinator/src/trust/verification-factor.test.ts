import { describe, expect, it } from "vitest";
import {
  CHEAT_PRIOR,
  CHEAT_SHARE,
  MEASURED_LIKELIHOODS,
  PRIOR_LOG_ODDS,
  QUARANTINE_P_CHEAT,
  SUSPECT_P_CHEAT,
  afterCheck,
  probabilityOf,
  verificationFactor,
} from "./verification-factor.js";

/** P(cheat) after these checks (true = passed), from the prior. */
function pAfter(checks: boolean[], start = PRIOR_LOG_ODDS): number {
  return probabilityOf(checks.reduce((x, passed) => afterCheck(x, passed), start));
}

const clean = (n: number) => Array.from({ length: n }, () => true);

describe("P(cheat) by Bayes' rule", () => {
  it("starts at the prior: a newcomer's verification factor is 1 − prior", () => {
    expect(probabilityOf(PRIOR_LOG_ODDS)).toBeCloseTo(CHEAT_PRIOR, 12);
    expect(verificationFactor(PRIOR_LOG_ODDS)).toBeCloseTo(1 - CHEAT_PRIOR, 12);
  });

  it("a failed check multiplies the odds by P(fail | cheater) / false-positive rate", () => {
    const { falsePositiveRate: fp, missRate: miss } = MEASURED_LIKELIHOODS;
    const odds = (p: number) => p / (1 - p);
    expect(odds(pAfter([false]))).toBeCloseTo(odds(CHEAT_PRIOR) * ((CHEAT_SHARE * (1 - miss)) / fp), 6);
  });

  it("a clean check decays the odds toward the prior and then weighs the pass", () => {
    const odds = (p: number) => p / (1 - p);
    const { falsePositiveRate: fp, missRate: miss } = MEASURED_LIKELIHOODS;
    expect(odds(pAfter([true]))).toBeCloseTo(odds(CHEAT_PRIOR) * ((1 - CHEAT_SHARE * (1 - miss)) / (1 - fp)), 10);
  });

  it("the same rules hold with the bench's figures when no cheat was ever missed", () => {
    const measured = { falsePositiveRate: 1e-4, missRate: 0 };
    const after = (checks: boolean[]) => probabilityOf(checks.reduce((x, passed) => afterCheck(x, passed, measured), PRIOR_LOG_ODDS));
    expect(after([...clean(500), false])).toBeGreaterThanOrEqual(SUSPECT_P_CHEAT);
    expect(after([...clean(500), false])).toBeLessThan(QUARANTINE_P_CHEAT);
    expect(after([...clean(500), false, false])).toBeGreaterThan(QUARANTINE_P_CHEAT);
    expect(after([false, ...clean(15)])).toBeLessThan(CHEAT_PRIOR);
  });

  it.each<[string, boolean[], "below" | "suspect" | "quarantine"]>([
    ["one failed check makes a newcomer suspect, not quarantined", [false], "suspect"],
    ["two failed checks in a row quarantine a newcomer", [false, false], "quarantine"],
    ["a long clean record does not shield a node that fails twice", [...clean(200), false, false], "quarantine"],
    ["one false positive on an honest node makes it suspect", [...clean(200), false], "suspect"],
    ["which clean checks clear again", [...clean(200), false, ...clean(10)], "below"],
    ["a failure between clean runs does not add up to quarantine", [false, ...clean(30), false, ...clean(30), false], "suspect"],
    ["clean checks only", clean(50), "below"],
  ])("%s", (_why, checks, expected) => {
    const p = pAfter(checks);
    if (expected === "quarantine") expect(p).toBeGreaterThan(QUARANTINE_P_CHEAT);
    else if (expected === "suspect") {
      expect(p).toBeGreaterThanOrEqual(SUSPECT_P_CHEAT);
      expect(p).toBeLessThanOrEqual(QUARANTINE_P_CHEAT);
    } else expect(p).toBeLessThan(SUSPECT_P_CHEAT);
  });

  it("clean checks settle below the prior, at a level they no longer move (about ten checks of memory)", () => {
    const settled = pAfter(clean(500));
    expect(settled).toBeLessThan(CHEAT_PRIOR);
    expect(settled).toBeGreaterThan(CHEAT_PRIOR / 1000);
    expect(pAfter(clean(1000))).toBeCloseTo(settled, 12);
  });

  it("stays finite however many checks fail", () => {
    const p = pAfter(Array.from({ length: 1000 }, () => false));
    expect(p).toBeLessThanOrEqual(1);
    expect(Number.isFinite(afterCheck(1e9, false))).toBe(true);
  });
});
