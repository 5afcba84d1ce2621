import { TesseraError } from "@tessera/protocol";

/**
 * When the coordinator pays operators without being asked (auto-payout): once per UTC period. A payout is due at
 * each period's start (the top of each hour; 00:00 UTC each day; Monday 00:00 UTC each week); the settlement worker
 * runs it at its first pass at or after that boundary, so a coordinator that was down catches up once, not once per
 * missed period. `off`: only explicit payout requests are paid.
 */
export const PAYOUT_SCHEDULES = ["hourly", "daily", "weekly", "off"] as const;
export type PayoutSchedule = (typeof PAYOUT_SCHEDULES)[number];

export const DEFAULT_PAYOUT_SCHEDULE: PayoutSchedule = "daily";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
// 1970-01-01 was a Thursday; the first Monday 00:00 UTC after the epoch is 4 days later.
const FIRST_MONDAY_MS = 4 * DAY_MS;

export function parsePayoutSchedule(text: string): PayoutSchedule {
  const value = text.trim().toLowerCase();
  if ((PAYOUT_SCHEDULES as readonly string[]).includes(value)) return value as PayoutSchedule;
  throw new TesseraError("bad_request", `"${text}" is not a payout schedule: give one of ${PAYOUT_SCHEDULES.join(", ")}`);
}

/** The start of the period that contains `nowMs` (epoch ms, UTC); undefined for `off`. */
export function periodStart(schedule: PayoutSchedule, nowMs: number): number | undefined {
  switch (schedule) {
    case "hourly":
      return Math.floor(nowMs / HOUR_MS) * HOUR_MS;
    case "daily":
      return Math.floor(nowMs / DAY_MS) * DAY_MS;
    case "weekly":
      return Math.floor((nowMs - FIRST_MONDAY_MS) / (7 * DAY_MS)) * 7 * DAY_MS + FIRST_MONDAY_MS;
    case "off":
      return undefined;
  }
}

/** The next boundary after `nowMs` at which an auto-payout falls due; undefined for `off`. */
export function nextPayoutAt(schedule: PayoutSchedule, nowMs: number): number | undefined {
  const start = periodStart(schedule, nowMs);
  if (start === undefined) return undefined;
  const length = schedule === "hourly" ? HOUR_MS : schedule === "daily" ? DAY_MS : 7 * DAY_MS;
  return start + length;
}

/**
 * Whether an auto-payout is due at `nowMs`, given when the last one ran (`undefined`: never, or not known since a
 * restart — then it is due, so a restart never skips a period). Due once per period: when no run happened at or after
 * the start of the current period.
 */
export function isPayoutDue(schedule: PayoutSchedule, lastRunMs: number | undefined, nowMs: number): boolean {
  const start = periodStart(schedule, nowMs);
  if (start === undefined) return false;
  return lastRunMs === undefined || lastRunMs < start;
}
