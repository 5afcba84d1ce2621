import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadNodeConfig, settingsHelp } from "../src/config.js";
import { createNodeLogger } from "../src/logger.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "tessera-log-"));
  dirs.push(d);
  return d;
}

describe("node log format", () => {
  it("is auto by default, set by --log-format, TESSERA_LOG_FORMAT or node.toml, and listed in --help", () => {
    const home = tempDir();
    expect(loadNodeConfig({ home, env: {} }).log_format).toBe("auto");
    expect(loadNodeConfig({ home, env: { TESSERA_LOG_FORMAT: "json" } }).log_format).toBe("json");
    expect(loadNodeConfig({ home, env: { TESSERA_LOG_FORMAT: "json" }, flags: { log_format: "pretty" } }).log_format).toBe("pretty");
    expect(() => loadNodeConfig({ home, env: { TESSERA_LOG_FORMAT: "xml" } })).toThrow(/--log-format, TESSERA_LOG_FORMAT/);
    expect(settingsHelp()).toMatch(/log_format\s+--log-format <format>\s+TESSERA_LOG_FORMAT/);
  });

  it("prints readable lines on a terminal and keeps JSON records in the log file", () => {
    const file = join(tempDir(), "logs", "node.log");
    const lines: string[] = [];
    const output = createNodeLogger({ level: "info", file, stdout: { isTTY: true, write: (line: string) => lines.push(line) } });
    output.logger.info({ job: "j1" }, "job received");
    output.close();
    expect(lines.join("")).toMatch(/^\S+ INFO  job received job=j1\n$/);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ level: 30, job: "j1", msg: "job received" });
  });

  it("prints JSON records when stdout is not a terminal, or with --log-format json", () => {
    const piped: string[] = [];
    createNodeLogger({ level: "info", stdout: { isTTY: false, write: (line: string) => piped.push(line) } }).logger.info("heartbeat OK");
    expect(JSON.parse(piped.join(""))).toMatchObject({ msg: "heartbeat OK" });
    const forced: string[] = [];
    createNodeLogger({ level: "info", format: "json", stdout: { isTTY: true, write: (line: string) => forced.push(line) } }).logger.info("heartbeat OK");
    expect(JSON.parse(forced.join(""))).toMatchObject({ msg: "heartbeat OK" });
  });
});
