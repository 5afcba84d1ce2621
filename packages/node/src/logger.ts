import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { pino, type Logger } from "pino";
import { type LogFormatSetting, formatLogLine, resolveLogFormat } from "@tessera/protocol";
import type { LogLevel } from "./config.js";

/**
 * The daemon's log: pino JSON records, appended as they are to the log file (one record a line, what `tessera logs`
 * reads and renders) and echoed to stdout readable (`2026-01-02T03:04:05.678Z INFO  heartbeat OK (12 ms)`) or as
 * JSON, per `log_format` (the formatter is protocol's, shared with the coordinator). Writes are synchronous: log
 * lines are rare (never per token) and a line written just before exit must not be lost.
 */
export type NodeLogger = Logger;

/** Kept for callers of the node package; the one implementation lives in protocol. */
export { formatLogLine };

export interface NodeLoggerOptions {
  level: LogLevel;
  /** `auto` (default): readable on a terminal, JSON otherwise. Applies to stdout; the file always gets JSON. */
  format?: LogFormatSetting;
  /** Append JSON records here; the directory is created. */
  file?: string;
  /**
   * Rotate the file when a record would take it past `maxBytes`: `node.log` becomes `node.log.1`, `.1` becomes `.2`,
   * …, and `.keep` is deleted (keep 0: the file just starts over). Default: no rotation.
   */
  rotate?: { maxBytes: number; keep: number };
  /**
   * Where to echo lines; false for none. Default process.stdout, whose `isTTY` decides `auto`. A writer of the
   * caller's (a command printing warnings on stderr) counts as read by a person unless it says `isTTY: false`.
   */
  stdout?: { write(line: string): unknown; isTTY?: boolean } | false;
}

export interface NodeLogOutput {
  logger: NodeLogger;
  /** Closes the log file. */
  close(): void;
}

export function createNodeLogger(options: NodeLoggerOptions): NodeLogOutput {
  let fd: number | undefined;
  let size = 0;
  const file = options.file;
  if (file) {
    mkdirSync(dirname(file), { recursive: true });
    fd = openSync(file, "a", 0o600);
    size = fstatSync(fd).size;
  }
  const rotate = options.rotate;
  const writeFile = (json: string) => {
    if (fd === undefined) return;
    const bytes = Buffer.byteLength(json);
    if (rotate && file && size > 0 && size + bytes > rotate.maxBytes) {
      closeSync(fd);
      rotateFiles(file, rotate.keep);
      fd = openSync(file, "a", 0o600);
      size = 0;
    }
    writeSync(fd, json);
    size += bytes;
  };
  const out = options.stdout === undefined ? process.stdout : options.stdout;
  const isTty = options.stdout === undefined ? process.stdout.isTTY === true : options.stdout !== false && options.stdout.isTTY !== false;
  const pretty = out !== false && resolveLogFormat(options.format ?? "auto", isTty) === "pretty";
  const destination = {
    write(json: string) {
      if (out) out.write(pretty ? formatLogLine(json) : json);
      writeFile(json);
    },
  };
  const logger = pino({ level: options.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  return {
    logger,
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** node.log.(keep-1) → node.log.keep, …, node.log → node.log.1; with keep 0 the file is dropped. */
function rotateFiles(file: string, keep: number): void {
  if (keep === 0) {
    rmSync(file, { force: true });
    return;
  }
  rmSync(`${file}.${keep}`, { force: true });
  for (let i = keep - 1; i >= 1; i--) {
    try {
      renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    } catch {
      // that generation does not exist yet
    }
  }
  renameSync(file, `${file}.1`);
}
