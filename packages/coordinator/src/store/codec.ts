import { TesseraError } from "@tessera/protocol";

/** Dates cross the store boundary as `Date` and are stored as epoch milliseconds on both dialects. */
export function toMs(date: Date, field: string): number {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw new TesseraError("bad_request", `${field} must be a valid Date`);
  return ms;
}

export function toMsOrNull(date: Date | null | undefined, field: string): number | null {
  return date == null ? null : toMs(date, field);
}

/** Row values come back as numbers (pg `int8` goes through the store's parser, see open-store.ts). */
export function fromMs(ms: number | string): Date {
  return new Date(Number(ms));
}

export function fromMsOrNull(ms: number | string | null): Date | null {
  return ms == null ? null : new Date(Number(ms));
}

export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

/** Numbers such as pg `count(*)` or a driver's row count can arrive as bigint or string. */
export function toNumber(value: number | bigint | string | null | undefined): number {
  return value == null ? 0 : Number(value);
}

/**
 * Maps a driver's constraint violation to a stable error code; other errors pass through unchanged.
 * better-sqlite3 reports `SQLITE_CONSTRAINT_*` codes, pg reports SQLSTATE 23505 (unique) and 23503 (foreign key).
 */
export function mapConstraintError(err: unknown, what: { conflict: string; missingParent?: string }): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505") {
    return new TesseraError("conflict", what.conflict, { cause: err });
  }
  if (what.missingParent && (code === "SQLITE_CONSTRAINT_FOREIGNKEY" || code === "23503")) {
    return new TesseraError("not_found", what.missingParent, { cause: err });
  }
  return err;
}

/**
 * Longest text the store accepts in an indexed column that a client, node or operator can fill (an API key's name, a
 * model id in the speed table). PostgreSQL refuses a B-tree entry over 2,704 bytes while SQLite takes any length, so
 * without a bound the same value would be stored on one dialect and fail on the other; 512 characters is at most
 * 2,048 bytes of UTF-8.
 */
export const MAX_KEY_TEXT = 512;

export function checkKeyText(value: string, field: string): void {
  if (value.length > MAX_KEY_TEXT) throw new TesseraError("bad_request", `${field} must be at most ${MAX_KEY_TEXT} characters`);
}
