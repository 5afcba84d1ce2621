import { closeSync, openSync, readSync, statSync } from "node:fs";
import { TesseraError } from "@tessera/protocol";

/**
 * Reading the daemon's log file for `tessera logs`: the last N lines without reading a large file whole, and
 * following it (`-f`) across truncation or rotation.
 */
const CHUNK = 64 * 1024;

export function tailLines(path: string, lines: number): { text: string; size: number } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new TesseraError("not_found", `no log file at ${path} (has the daemon run with this --home?)`);
    throw new TesseraError("bad_request", `cannot read log file ${path}: ${code ?? String(err)}`, { cause: err });
  }
  try {
    const size = statSync(path).size;
    if (lines === 0) return { text: "", size };
    let position = size;
    let text = "";
    let newlines = 0;
    while (position > 0 && newlines <= lines) {
      const length = Math.min(CHUNK, position);
      position -= length;
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, position);
      const chunk = buffer.toString("utf8");
      for (const ch of chunk) if (ch === "\n") newlines++;
      text = chunk + text;
    }
    const all = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
    const kept = all.slice(-lines);
    return { text: kept.length && kept.join("") !== "" ? `${kept.join("\n")}\n` : "", size };
  } finally {
    closeSync(fd);
  }
}

export interface FollowHandle {
  stop(): void;
}

/** Calls `onText` with what is appended after `from`; starts over from 0 when the file shrinks (rotated). */
export function followFile(
  path: string,
  from: number,
  onText: (text: string) => void,
  intervalMs = 250,
): FollowHandle {
  let offset = from;
  const timer = setInterval(() => {
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return; // rotated away for a moment
    }
    if (size < offset) offset = 0;
    if (size === offset) return;
    const fd = openSync(path, "r");
    try {
      const buffer = Buffer.alloc(size - offset);
      const read = readSync(fd, buffer, 0, buffer.length, offset);
      offset += read;
      onText(buffer.subarray(0, read).toString("utf8"));
    } finally {
      closeSync(fd);
    }
  }, intervalMs);
  return { stop: () => clearInterval(timer) };
}
