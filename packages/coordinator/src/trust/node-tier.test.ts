import { describe, expect, it } from "vitest";
import { CHECK_RATES, PROBATION_JOBS, TRUSTED_MIN_PASSED_CHECKS, nodeTier, type TierInputs } from "./node-tier.js";

const base: TierInputs = { pCheat: 0.005, checksPassed: TRUSTED_MIN_PASSED_CHECKS, operatorCompletedJobs: PROBATION_JOBS };

describe("node tiers", () => {
  it.each<[string, Partial<TierInputs>, string]>([
    ["a new operator is on probation", { operatorCompletedJobs: 0, checksPassed: 0, pCheat: 0.01 }, "probation"],
    ["probation lasts the operator's first 200 completed jobs", { operatorCompletedJobs: PROBATION_JOBS - 1 }, "probation"],
    ["after them, with a long clean record: trusted", {}, "trusted"],
    ["too few passed checks: normal", { checksPassed: TRUSTED_MIN_PASSED_CHECKS - 1 }, "normal"],
    ["enough checks but a recent failure still weighs: normal", { pCheat: 0.05 }, "normal"],
    ["a failed check making cheating likely: suspect", { pCheat: 0.2 }, "suspect"],
    ["suspect wins over probation", { pCheat: 0.5, operatorCompletedJobs: 3 }, "suspect"],
  ])("%s", (_why, inputs, tier) => {
    expect(nodeTier({ ...base, ...inputs })).toBe(tier);
  });

  it("checks each tier at the issue's rates", () => {
    expect(CHECK_RATES).toEqual({ probation: 0.2, normal: 0.05, trusted: 0.02, suspect: 1 });
  });
});
