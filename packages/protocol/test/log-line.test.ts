import { describe, expect, it } from "vitest";
import { formatLogLine, formatLogText, resolveLogFormat } from "../src/log-line.js";

describe("resolveLogFormat", () => {
  it.each([
    ["auto", true, "pretty"],
    ["auto", false, "json"],
    ["pretty", false, "pretty"],
    ["json", true, "json"],
  ] as const)("%s on a terminal=%s is %s", (setting, isTty, expected) => {
    expect(resolveLogFormat(setting, isTty)).toBe(expected);
  });
});

describe("formatLogLine", () => {
  it("renders a record as time, level, message and key=value fields", () => {
    const json = JSON.stringify({ level: 30, time: "2026-01-02T03:04:05.678Z", node: "abc", models: ["a", "b"], n: 3, msg: "node registered" });
    expect(formatLogLine(json)).toBe('2026-01-02T03:04:05.678Z INFO  node registered node=abc models=["a","b"] n=3\n');
  });

  it("accepts epoch milliseconds as the time", () => {
    expect(formatLogLine(JSON.stringify({ level: 40, time: 0, msg: "slow" }))).toBe("1970-01-01T00:00:00.000Z WARN  slow\n");
  });

  it("shows an error as its code and message, never its stack", () => {
    const err = { type: "Error", message: "driver gone", code: "EPIPE", stack: "Error: driver gone\n    at x (y.js:1:2)" };
    const line = formatLogLine(JSON.stringify({ level: 50, time: 0, err, msg: "could not store" }));
    expect(line).toBe('1970-01-01T00:00:00.000Z ERROR could not store error="[EPIPE] driver gone"\n');
    expect(line).not.toMatch(/at x/);
  });

  it("passes a line that is not a JSON record through unchanged", () => {
    expect(formatLogLine("Segmentation fault")).toBe("Segmentation fault\n");
    expect(formatLogLine("[1,2]\n")).toBe("[1,2]\n");
    expect(formatLogLine("42")).toBe("42\n");
  });
});

describe("formatLogText", () => {
  it("formats whole lines and keeps a trailing partial line for the next chunk", () => {
    const a = JSON.stringify({ level: 30, time: 0, msg: "one" });
    const b = JSON.stringify({ level: 30, time: 0, msg: "two" });
    const first = formatLogText(`${a}\n${b.slice(0, 10)}`);
    expect(first.lines).toBe("1970-01-01T00:00:00.000Z INFO  one\n");
    const second = formatLogText(`${first.rest}${b.slice(10)}\n`);
    expect(second).toEqual({ lines: "1970-01-01T00:00:00.000Z INFO  two\n", rest: "" });
  });
});
