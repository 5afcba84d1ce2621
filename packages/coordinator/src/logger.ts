import pino from "pino";
import { type LogFormatSetting, formatLogLine, resolveLogFormat } from "@tessera/protocol";

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** `auto` (default): readable lines on a terminal, JSON records otherwise (files, pipes, journald). */
  format?: LogFormatSetting;
  /** Where lines go; default process.stdout. Its `isTTY` decides `auto`. */
  stdout?: { write(line: string): unknown; isTTY?: boolean };
}

/**
 * The coordinator's log on stdout: pino JSON records, rendered through the shared `formatLogLine` when the format
 * resolves to `pretty`. Writes are synchronous so a line logged just before exit is not lost. `silent` for tests.
 */
export function createLogger(level: string = "info", options: LoggerOptions = {}): Logger {
  const out = options.stdout ?? process.stdout;
  const format = resolveLogFormat(options.format ?? "auto", out.isTTY === true);
  const destination = { write: format === "pretty" ? (json: string) => out.write(formatLogLine(json)) : (json: string) => out.write(json) };
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
