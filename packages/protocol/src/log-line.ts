/**
 * The one log format both the coordinator and the node daemon speak. Each writes pino's JSON records; on a terminal
 * they are rendered through `formatLogLine` as readable lines, in files and pipes they stay JSON (one record a line,
 * for log shippers and `jq`). Pure: callers own the destination and tell `resolveLogFormat` whether it is a TTY.
 */
export const LOG_FORMATS = ["auto", "pretty", "json"] as const;
export type LogFormatSetting = (typeof LOG_FORMATS)[number];
export type LogFormat = Exclude<LogFormatSetting, "auto">;

/** `auto` is readable on a terminal and JSON anywhere else (a file, a pipe, a service manager's journal). */
export function resolveLogFormat(setting: LogFormatSetting, isTty: boolean): LogFormat {
  if (setting === "auto") return isTty ? "pretty" : "json";
  return setting;
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };

/**
 * One pino JSON record as a readable line: `2026-01-02T03:04:05.678Z INFO  heartbeat OK key=value`. Structured
 * fields follow the message as `key=value` so lines stay greppable; an error shows as its code and message, never
 * its stack (the JSON format keeps the stack). A line that is not a JSON record (a crash's stderr in the node's log
 * file) passes through as it is.
 */
export function formatLogLine(json: string): string {
  let record: unknown;
  try {
    record = JSON.parse(json);
  } catch {
    record = undefined;
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) return json.endsWith("\n") ? json : `${json}\n`;
  const { level, time, msg, err, ...fields } = record as Record<string, unknown>;
  const when = typeof time === "number" ? new Date(time).toISOString() : typeof time === "string" ? time : "";
  const name = (LEVEL_NAMES[level as number] ?? String(level ?? "")).padEnd(5);
  let line = `${when} ${name} ${typeof msg === "string" ? msg : ""}`.trimEnd();
  for (const [key, value] of Object.entries(fields)) {
    line += ` ${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
  }
  if (err !== undefined) line += ` error=${JSON.stringify(describeError(err))}`;
  return `${line}\n`;
}

function describeError(err: unknown): string {
  if (typeof err !== "object" || err === null) return String(err);
  const e = err as { message?: unknown; code?: unknown };
  const message = typeof e.message === "string" ? e.message : JSON.stringify(err);
  return typeof e.code === "string" ? `[${e.code}] ${message}` : message;
}

/**
 * Renders text made of whole or partial lines (a chunk of a followed log file): complete lines are formatted, a
 * trailing partial line is kept in `rest` for the next chunk.
 */
export function formatLogText(text: string): { lines: string; rest: string } {
  const end = text.lastIndexOf("\n");
  if (end === -1) return { lines: "", rest: text };
  const lines = text
    .slice(0, end)
    .split("\n")
    .map((line) => formatLogLine(line))
    .join("");
  return { lines, rest: text.slice(end + 1) };
}
