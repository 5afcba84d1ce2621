import { type ChildProcessByStdio, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TESSERA_BIN, freePort, startFakeOpenAICompatible, waitUntil } from "@tessera/testkit";

/** `[limits] max_power_watts` applied by a real daemon at start, through a fake `nvidia-smi` first on the PATH. */
let dir: string;
let backend: Awaited<ReturnType<typeof startFakeOpenAICompatible>>;
let ENV: NodeJS.ProcessEnv;

function tessera(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(process.execPath, [TESSERA_BIN, ...args], { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-power-cap-"));
  mkdirSync(join(dir, "bin"));
  const set = readFileSync(join(__dirname, "..", "..", "node", "src", "power-cap", "fixtures", "nvidia-smi-pl-set.txt"), "utf8");
  writeFileSync(
    join(dir, "bin", "nvidia-smi"),
    `#!/bin/sh\necho "$*" >> "${join(dir, "nvidia-smi.log")}"\nif [ "$1" = "-pl" ]; then printf '%s' '${set.replace(/300\.00/g, "'\"$2\"'.00")}'; exit 0; fi\nexit 9\n`,
  );
  chmodSync(join(dir, "bin", "nvidia-smi"), 0o755);
  ENV = { ...process.env, PATH: `${join(dir, "bin")}:${process.env.PATH}`, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };
  backend = await startFakeOpenAICompatible({ flavour: "vllm", models: ["tiny-chat"] });
});
afterAll(async () => {
  await backend?.http.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.runIf(process.platform !== "win32")("tessera start with --max-power", () => {
  it("runs nvidia-smi -pl <W> once at start and logs what it did; out-of-range values are refused before anything runs", async () => {
    const home = join(dir, "node");
    const coordinator = `http://127.0.0.1:${await freePort()}`;
    expect((await tessera("init", "--home", home, "--coordinator", coordinator, "--backend", "vllm", "--vllm-host", backend.url)).code).toBe(0);
    const bad = await tessera("start", "--home", home, "--max-power", "lots");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error \[bad_request\]: .*--max-power/);
    expect(existsSync(join(dir, "nvidia-smi.log"))).toBe(false);

    const started = await tessera("start", "--detach", "--home", home, "--max-power", "300");
    expect(started.code).toBe(0);
    const log = join(home, "logs", "node.log");
    await waitUntil(() => existsSync(log) && readFileSync(log, "utf8").includes("GPU power cap"), 20_000);
    expect(readFileSync(log, "utf8")).toContain("GPU power cap 300 W applied with nvidia-smi -pl (450 → 300 W, 450 → 300 W)");
    expect(readFileSync(join(dir, "nvidia-smi.log"), "utf8").split("\n").filter((l) => l.startsWith("-pl"))).toEqual(["-pl 300"]);
    expect((await tessera("stop", "--home", home)).code).toBe(0);
  }, 60_000);
});
