import { describe, expect, it } from "vitest";
import { COORDINATOR_SETTINGS, loadCoordinatorConfig, settingsHelp } from "../src/config.js";
import { createLogger } from "../src/logger.js";

function capture(isTTY: boolean) {
  const lines: string[] = [];
  return { lines, stdout: { isTTY, write: (line: string) => lines.push(line) } };
}

describe("coordinator log format", () => {
  it("is auto by default, set by --log-format or TESSERA_LOG_FORMAT (the flag wins), and listed in --help", () => {
    expect(loadCoordinatorConfig({}, {}).logFormat).toBe("auto");
    expect(loadCoordinatorConfig({}, { TESSERA_LOG_FORMAT: "json" }).logFormat).toBe("json");
    expect(loadCoordinatorConfig({ logFormat: "pretty" }, { TESSERA_LOG_FORMAT: "json" }).logFormat).toBe("pretty");
    expect(() => loadCoordinatorConfig({ logFormat: "xml" }, {})).toThrow(/--log-format \(TESSERA_LOG_FORMAT\) must be one of auto, pretty, json/);
    expect(COORDINATOR_SETTINGS.some((s) => s.flag === "--log-format")).toBe(true);
    expect(settingsHelp()).toMatch(/--log-format\s+TESSERA_LOG_FORMAT/);
  });

  it("auto writes readable lines to a terminal and JSON records elsewhere", () => {
    const tty = capture(true);
    createLogger("info", { stdout: tty.stdout }).info({ node: "abc" }, "node session open");
    expect(tty.lines.join("")).toMatch(/^\S+ INFO  node session open node=abc\n$/);

    const pipe = capture(false);
    createLogger("info", { stdout: pipe.stdout }).info({ node: "abc" }, "node session open");
    expect(JSON.parse(pipe.lines.join(""))).toMatchObject({ level: 30, node: "abc", msg: "node session open" });
  });

  it("an explicit format wins over the terminal check", () => {
    const tty = capture(true);
    createLogger("info", { format: "json", stdout: tty.stdout }).warn("slow");
    expect(JSON.parse(tty.lines.join(""))).toMatchObject({ level: 40, msg: "slow" });
    const pipe = capture(false);
    createLogger("info", { format: "pretty", stdout: pipe.stdout }).warn("slow");
    expect(pipe.lines.join("")).toMatch(/ WARN  slow\n$/);
  });
});
