import { TesseraError } from "./errors.js";

const UNITS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `90s`, `30m`, `24h`, `365d`, or plain seconds → seconds, within [min, max]; bad_request naming the flag otherwise. */
export function parseDuration(text: string, flag: string, bounds: { min: number; max: number }): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * UNITS[(m[2] ?? "s") as keyof typeof UNITS] : Number.NaN;
  if (!(seconds >= bounds.min && seconds <= bounds.max)) {
    throw new TesseraError("bad_request", `${flag} must be a duration from ${describe(bounds.min)} to ${describe(bounds.max)}, like 24h or 30d; got "${text}"`);
  }
  return seconds;
}

function describe(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
