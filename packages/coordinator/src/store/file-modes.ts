import { chmodSync, closeSync, mkdirSync, openSync, statSync } from "node:fs";

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** SQLite's companions of a database file; each holds pages of the database. */
export const SQLITE_COMPANIONS = ["-wal", "-shm", "-journal"] as const;

/** Told about every loose mode that was tightened (a log line in the coordinator). */
export type ModeFixLog = (fields: { path: string; from: string; to: string }, message: string) => void;

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/** Creates `dir` (and missing parents) 0700, or tightens an existing one that others can read or enter. */
export function ensurePrivateDir(dir: string, log?: ModeFixLog): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  tighten(dir, PRIVATE_DIR_MODE, log);
}

/** Tightens `path` to 0600 when it exists with any group or other bits; a missing file is left missing. */
export function ensurePrivateFile(path: string, log?: ModeFixLog): void {
  tighten(path, PRIVATE_FILE_MODE, log);
}

/**
 * Makes sure a file exists with mode 0600 before anything else opens it: SQLite creates its -wal and -shm files with
 * the database file's mode, so creating the database 0600 (an empty file is a valid empty database) keeps all three
 * private from the first byte, whatever the process umask.
 */
export function createPrivateFile(path: string, log?: ModeFixLog): void {
  closeSync(openSync(path, "a", PRIVATE_FILE_MODE));
  tighten(path, PRIVATE_FILE_MODE, log);
}

function tighten(path: string, mode: number, log?: ModeFixLog): void {
  let current: number;
  try {
    current = statSync(path).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if ((current & 0o077) === 0) return;
  chmodSync(path, mode);
  log?.({ path, from: octal(current), to: octal(mode) }, "tightened the mode of a store file others could read");
}
