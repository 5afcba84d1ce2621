import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * `tessera --help` and the client and setup commands start fast because they never load the heavy packages: the
 * inference engine, the HTTP server, the SQL drivers, logging and metrics are loaded inside the action of the command
 * that needs them. Checked by recording every module the real CLI process loads (no timings).
 */
const BIN = fileURLToPath(new URL("../bin/tessera.js", import.meta.url));
const RECORDER = pathToFileURL(fileURLToPath(new URL("./load-recorder/register.mjs", import.meta.url))).href;
const HEAVY = ["node-llama-cpp", "ipull", "fastify", "better-sqlite3", "pg", "kysely", "pino", "prom-client"];
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_URL: "" };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-startup-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let runs = 0;
/** Runs `tessera ...args` and returns its exit code and the npm packages it loaded. */
function packagesLoadedBy(...args: string[]): { code: number | null; packages: Set<string> } {
  const record = join(dir, `loads-${++runs}.txt`);
  const result = spawnSync(process.execPath, ["--import", RECORDER, BIN, ...args], { encoding: "utf8", env: { ...ENV, TESSERA_RECORD_LOADS: record } });
  const packages = new Set<string>();
  for (const url of readFileSync(record, "utf8").split("\n")) {
    // The innermost node_modules names the package (an npm package may nest its own node_modules).
    const name = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
    if (name) packages.add(name);
  }
  return { code: result.status, packages };
}

describe("what `tessera` loads before the command runs", () => {
  it("the recorder sees the heavy packages where a command does load them (so their absence below means something)", () => {
    const keys = packagesLoadedBy("coordinator", "keys", "list", "--data-dir", join(dir, "coordinator"));
    expect(keys.code).toBe(0);
    expect([...keys.packages]).toEqual(expect.arrayContaining(["fastify", "better-sqlite3", "pg", "kysely"]));
  });

  it.each([
    ["--help", ["--help"], 0],
    ["status --help", ["status", "--help"], 0],
    ["coordinator start --help", ["coordinator", "start", "--help"], 0],
    ["status against a coordinator that is not there", ["status", "--url", "http://127.0.0.1:1"], 3],
    ["init", ["init", "--home", "HOME", "--coordinator", "http://127.0.0.1:7999"], 0],
    ["logs with no log yet", ["logs", "--home", "HOME"], 1],
  ])("%s loads none of the heavy packages", (_name, args, code) => {
    const run = packagesLoadedBy(...args.map((arg) => (arg === "HOME" ? join(dir, "node") : arg)));
    expect(run.code).toBe(code);
    expect(run.packages.has("commander")).toBe(true);
    expect(HEAVY.filter((name) => run.packages.has(name))).toEqual([]);
  });
});
