import { type ChildProcessByStdio, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TESSERA_BIN, freePort, startFakeOpenAICompatible } from "@tessera/testkit";

/** `tessera start --detach` then `tessera stop`, on real processes: the daemon drains and exits, its pid file goes. */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };
let dir: string;
let backend: Awaited<ReturnType<typeof startFakeOpenAICompatible>>;

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return collect(spawn(process.execPath, [TESSERA_BIN, ...args], { env: ENV, stdio: ["ignore", "pipe", "pipe"] }));
}

/** Runs a command line the CLI printed, as a user types it in a shell here (the checkout). */
function typed(line: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return collect(spawn("sh", ["-c", line], { env: ENV, stdio: ["ignore", "pipe", "pipe"] }));
}

function collect(child: ChildProcessByStdio<null, Readable, Readable>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-stop-"));
  backend = await startFakeOpenAICompatible({ flavour: "vllm", models: ["tiny-chat"] });
});
afterAll(async () => {
  await backend?.http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("tessera stop", () => {
  it("stops a detached daemon, which drains and removes its pid file; a second stop says none runs", async () => {
    const home = join(dir, "node");
    // No coordinator listens there: the daemon keeps retrying registration, and stays up until stopped.
    const coordinator = `http://127.0.0.1:${await freePort()}`;
    expect((await tessera("init", "--home", home, "--coordinator", coordinator, "--backend", "vllm", "--vllm-host", backend.url)).code).toBe(0);
    const started = await tessera("start", "--detach", "--home", home);
    // In a checkout `tessera` is not on the PATH: the daemon's stop line says `npx tessera …`, and runs as printed.
    const printed = /^stop +(.+)$/m.exec(started.stdout)?.[1];
    expect(printed).toBe(`npx tessera stop --home ${home}`);
    const stopped = await typed(printed!);
    expect(stopped.stdout).toMatch(/stopping the node daemon \(pid \d+\): draining…\nstopped\n/);
    expect(existsSync(join(home, "node.pid"))).toBe(false);
    // The daemon drained (SIGTERM, as Ctrl-C: no new jobs, in-flight ones finish or move) and ended cleanly.
    const log = readFileSync(join(home, "logs", "node.log"), "utf8");
    expect(log).toMatch(/SIGTERM received: draining/);
    expect(log).toMatch(/stopped \(\d+ jobs completed\)/);
    const again = await tessera("stop", "--home", home);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/error \[not_found\]: no node daemon is running for this home/);
  }, 60_000);

  it("refuses a bad --timeout before signalling anything", async () => {
    const run = await tessera("stop", "--home", join(dir, "nobody"), "--timeout", "forever");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--timeout must be a duration/);
  });
});
