import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

/**
 * The build cache's promises, on separate processes with a stand-in toolchain (a `cmake` that "builds" a script in a
 * few seconds and logs each build, a `c++` that only has a version): two tests building at once build once, and a
 * build killed half-way never counts as done. The real compile is exercised by llama-server-real.test.ts.
 */
const runner = fileURLToPath(new URL("./build-llama-server.test-support.ts", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../../..", import.meta.url));
let dir: string;
let fakeBin: string;
let cmakeLog: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-build-cache-"));
  fakeBin = join(dir, "fake-bin");
  cmakeLog = join(dir, "cmake.log");
  mkdirSync(fakeBin);
  const cmake = `#!/bin/sh
echo "$*" >> "${cmakeLog}"
case "$1" in
  --version) echo "cmake version 3.99.0 (stand-in)" ;;
  --build)
    sleep "\${FAKE_BUILD_SECONDS:-2}"
    mkdir -p "$2/bin"
    printf '#!/bin/sh\\necho "version: stand-in"\\n' > "$2/bin/llama-server"
    chmod +x "$2/bin/llama-server"
    echo "[1/1] Linking CXX executable bin/llama-server" ;;
esac
`;
  for (const [name, body] of [["cmake", cmake], ["c++", '#!/bin/sh\necho "c++ (stand-in) 1.0"\n']] as const) {
    const path = join(fakeBin, name);
    writeFileSync(path, body);
    chmodSync(path, 0o755);
  }
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function startBuild(cacheDir: string, buildSeconds: number): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, ["--import", "tsx", runner, cacheDir], {
    cwd: repoRoot,
    env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? ""}`, CXX: "", CI: "", FAKE_BUILD_SECONDS: String(buildSeconds) },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so a kill takes the stand-in cmake with it, as Ctrl-C would
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  return { child, done: new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr }))) };
}

function builds(): number {
  return existsSync(cmakeLog) ? readFileSync(cmakeLog, "utf8").split("\n").filter((l) => l.startsWith("--build")).length : 0;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600 && !condition(); i++) await new Promise((r) => setTimeout(r, 100));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

describe("llama-server build cache", () => {
  it("two processes asking at once build once and get the same binary; a third finds it without building", async () => {
    const cache = join(dir, "cache");
    const [a, b] = [startBuild(cache, 3), startBuild(cache, 3)];
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const pa = JSON.parse(ra.stdout) as { binaryPath: string };
    expect(JSON.parse(rb.stdout)).toMatchObject({ binaryPath: pa.binaryPath });
    expect(existsSync(pa.binaryPath)).toBe(true);
    expect(builds()).toBe(1);
    expect(readdirSync(cache).filter((f) => f.includes(".tmp-") || f.endsWith(".lock"))).toEqual([]);
    const again = await startBuild(cache, 3).done;
    expect(JSON.parse(again.stdout)).toMatchObject({ binaryPath: pa.binaryPath });
    expect(builds()).toBe(1);
  }, 120_000);

  it("a build killed half-way never counts as done: the next call builds afresh and clears the remains", async () => {
    const cache = join(dir, "cache");
    const killed = startBuild(cache, 60);
    await until(() => builds() === 1, "the first build to start compiling");
    process.kill(-killed.child.pid!, "SIGKILL");
    await killed.done;
    expect(readdirSync(cache).some((f) => f.includes(".tmp-"))).toBe(true);
    const next = await startBuild(cache, 1).done;
    expect(next.code, next.stderr).toBe(0);
    const { binaryPath } = JSON.parse(next.stdout) as { binaryPath: string };
    expect(existsSync(binaryPath)).toBe(true);
    expect(builds()).toBe(2);
    expect(readdirSync(cache).filter((f) => f.includes(".tmp-") || f.endsWith(".lock"))).toEqual([]);
  }, 120_000);
});
