import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_VERSION } from "../src/version.js";

/**
 * bin/tessera.js runs the compiled JavaScript (dist/, which vitest's global setup and `npm run build` bring up to
 * date), not the TypeScript sources: no tsx, no .ts module, and the workspace packages from their dist/ too. Checked
 * by recording every module the real process resolves (load-recorder/, as startup-modules.test.ts does).
 */
const BIN = fileURLToPath(new URL("../bin/tessera.js", import.meta.url));
const RECORDER = pathToFileURL(fileURLToPath(new URL("./load-recorder/register.mjs", import.meta.url))).href;
const PACKAGES = fileURLToPath(new URL("../..", import.meta.url));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-compiled-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { status: number | null; stdout: string; loaded: string[] } {
  const record = join(dir, `loads-${args.join("_")}.txt`);
  const result = spawnSync(process.execPath, ["--import", RECORDER, BIN, ...args], { encoding: "utf8", env: { ...process.env, TESSERA_RECORD_LOADS: record } });
  const loaded = readFileSync(record, "utf8").split("\n").filter(Boolean);
  return { status: result.status, stdout: result.stdout, loaded };
}

/** What a run loaded of our own packages, as paths under packages/. */
const ours = (loaded: string[]) => loaded.filter((url) => url.startsWith("file:")).map((url) => fileURLToPath(url)).filter((path) => path.startsWith(PACKAGES) && !path.includes("/node_modules/")).map((path) => path.slice(PACKAGES.length));

describe("the built `tessera` command", () => {
  it("--version prints the version from dist/main.js alone: no tsx, no TypeScript, not even commander", () => {
    const { status, stdout, loaded } = run("--version");
    expect(status).toBe(0);
    expect(stdout).toBe(`${CLI_VERSION}\n`);
    expect(ours(loaded)).toEqual(expect.arrayContaining(["cli/dist/main.js", "cli/dist/version.js"]));
    expect(loaded.filter((url) => url.endsWith(".ts") || /\/node_modules\/(tsx|commander)\//.test(url))).toEqual([]);
  });

  it("a real command runs every workspace package from its dist/ (the exports' default), never from src/", () => {
    const { status, stdout, loaded } = run("--help");
    expect(status).toBe(0);
    expect(stdout).toMatch(/Usage: tessera/);
    const files = ours(loaded).filter((path) => !path.startsWith("cli/bin/"));
    expect(files).toEqual(expect.arrayContaining(["cli/dist/program.js", "protocol/dist/index.js", "sdk/dist/index.js"]));
    expect(files.filter((path) => !/^[a-z]+\/dist\/.*\.js$/.test(path))).toEqual([]);
  });
});
