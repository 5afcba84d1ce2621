import { readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

/**
 * The daemon's pid file: lets `tessera start` refuse to run a second daemon on the same home and tells
 * `--detach` users which process to signal. A pid whose process is gone counts as no daemon (stale file).
 */
export function readLivePid(path: string, isAlive: (pid: number) => boolean = processAlive): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return isAlive(pid) ? pid : undefined;
}

export function writePidFile(path: string, pid: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${pid}\n`, { mode: 0o644 });
}

/** Removes the file only if it still names `pid` (a newer daemon may own it now). */
export function removePidFile(path: string, pid: number): void {
  try {
    if (readFileSync(path, "utf8").trim() === String(pid)) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}

/** Whether a process with this pid exists (one we may not signal counts: it is alive). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
