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

describe("the log file's rotation", () => {
  it("moves node.log to node.log.1 (and on) when a record would pass the size, keeping as many as asked", async () => {
    const { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { createNodeLogger } = await import("../src/logger.js");
    const dir = mkdtempSync(join(tmpdir(), "tessera-rotate-"));
    try {
      const file = join(dir, "node.log");
      const output = createNodeLogger({ level: "info", stdout: false, file, rotate: { maxBytes: 1000, keep: 2 } });
      for (let i = 0; i < 40; i++) output.logger.info(`record ${i} ${"x".repeat(60)}`);
      output.close();
      expect(readdirSync(dir).sort()).toEqual(["node.log", "node.log.1", "node.log.2"]);
      for (const name of ["node.log", "node.log.1", "node.log.2"]) expect(statSync(join(dir, name)).size).toBeLessThanOrEqual(1000);
      // The newest record is in node.log, whole lines only, and nothing in between was lost from what is kept.
      const lines = (name: string) => readFileSync(join(dir, name), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { msg: string }).msg);
      const kept = [...lines("node.log.2"), ...lines("node.log.1"), ...lines("node.log")].map((m) => Number(m.split(" ")[1]));
      expect(kept.at(-1)).toBe(39);
      expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 40 - kept.length + i));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
