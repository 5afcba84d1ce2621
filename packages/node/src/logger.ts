import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { pino, type Logger } from "pino";
import type { LogLevel } from "./config.js";

/**
 * The daemon's log: pino, rendered as readable lines (`2026-01-02T03:04:05.678Z INFO  heartbeat OK (12 ms)`) to
 * stdout and appended to the log file that `tessera logs` reads. Structured fields follow the message as `key=value`
 * so lines stay greppable. Writes are synchronous: log lines are rare (never per token) and a line written just
 * before exit must not be lost.
 */
export type NodeLogger = Logger;

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

export function formatLogLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const { level, time, msg, err, ...fields } = record;
  const when = typeof time === "number" ? new Date(time).toISOString() : "";
  const name = (LEVEL_NAMES[level as number] ?? String(level)).padEnd(5);
  let line = `${when} ${name} ${typeof msg === "string" ? msg : ""}`;
  for (const [key, value] of Object.entries(fields)) {
    line += ` ${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
  }
  if (err && typeof err === "object") {
    const e = err as { message?: string; code?: string };
    line += ` error=${JSON.stringify(e.code ? `[${e.code}] ${e.message}` : e.message)}`;
  }
  return `${line}\n`;
}

export interface NodeLoggerOptions {
  level: LogLevel;
  /** Append readable lines here; the directory is created. */
  file?: string;
  /** Where to echo lines; false for none. Default process.stdout. */
  stdout?: { write(line: string): unknown } | false;
}

export interface NodeLogOutput {
  logger: NodeLogger;
  /** Closes the log file. */
  close(): void;
}

export function createNodeLogger(options: NodeLoggerOptions): NodeLogOutput {
  let fd: number | undefined;
  if (options.file) {
    mkdirSync(dirname(options.file), { recursive: true });
    fd = openSync(options.file, "a", 0o600);
  }
  const out = options.stdout === undefined ? process.stdout : options.stdout;
  const destination = {
    write(json: string) {
      const line = formatLogLine(json);
      if (out) out.write(line);
      if (fd !== undefined) writeSync(fd, line);
    },
  };
  const logger = pino({ level: options.level, base: undefined }, destination);
  return {
    logger,
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
