import { describe, expect, it } from "vitest";
import { isPayoutDue, nextPayoutAt, parsePayoutSchedule, periodStart } from "./payout-schedule.js";

const at = (iso: string) => Date.parse(iso);

describe("payout schedule", () => {
  it("parses the four schedules, case and spaces aside, and refuses anything else by name", () => {
    expect(parsePayoutSchedule("hourly")).toBe("hourly");
    expect(parsePayoutSchedule(" Daily ")).toBe("daily");
    expect(parsePayoutSchedule("WEEKLY")).toBe("weekly");
    expect(parsePayoutSchedule("off")).toBe("off");
    for (const bad of ["", "monthly", "1h", "day"]) {
      expect(() => parsePayoutSchedule(bad)).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringContaining("hourly, daily, weekly, off") }));
    }
  });

  it("periods start at the top of the hour, at 00:00 UTC, and on Monday 00:00 UTC", () => {
    const now = at("2026-12-04T23:29:14.500Z"); // a Friday
    expect(new Date(periodStart("hourly", now)!).toISOString()).toBe("2026-12-04T23:00:00.000Z");
    expect(new Date(periodStart("daily", now)!).toISOString()).toBe("2026-12-04T00:00:00.000Z");
    expect(new Date(periodStart("weekly", now)!).toISOString()).toBe("2026-11-30T00:00:00.000Z");
    expect(new Date(periodStart("weekly", at("2026-11-30T00:00:00Z"))!).toISOString()).toBe("2026-11-30T00:00:00.000Z");
    expect(new Date(periodStart("weekly", at("2026-11-29T23:59:59Z"))!).toISOString()).toBe("2026-11-23T00:00:00.000Z");
    expect(periodStart("off", now)).toBeUndefined();
    expect(new Date(nextPayoutAt("weekly", now)!).toISOString()).toBe("2026-12-07T00:00:00.000Z");
    expect(new Date(nextPayoutAt("hourly", now)!).toISOString()).toBe("2026-12-05T00:00:00.000Z");
    expect(nextPayoutAt("off", now)).toBeUndefined();
  });

  it("is due once per period: never run (or unknown after a restart) is due; a run in this period is not; off never is", () => {
    const now = at("2026-12-04T10:30:00Z");
    const table: Array<[Parameters<typeof isPayoutDue>[0], number | undefined, boolean]> = [
      ["daily", undefined, true],
      ["daily", at("2026-12-04T00:00:00Z"), false],
      ["daily", at("2026-12-03T23:59:59Z"), true],
      ["hourly", at("2026-12-04T10:00:00Z"), false],
      ["hourly", at("2026-12-04T09:59:59.999Z"), true],
      ["weekly", at("2026-12-01T12:00:00Z"), false],
      ["weekly", at("2026-11-29T12:00:00Z"), true],
      ["off", undefined, false],
    ];
    for (const [schedule, last, due] of table) expect([schedule, last, isPayoutDue(schedule, last, now)]).toEqual([schedule, last, due]);
  });
});
