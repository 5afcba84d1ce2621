import { type ChildProcessByStdio, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CommandResult, type CommandRunner, nodeLlamaCppVersion, readGpuRuntimeRecord } from "@tessera/node";
import { TESSERA_BIN } from "@tessera/testkit";
import { type GpuSetupDeps, runGpuSetup } from "../src/gpu/run-gpu-setup.js";

const fixture = (name: string) => readFileSync(join(__dirname, "..", "..", "node", "src", "gpu-runtime", "fixtures", name), "utf8");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-gpu-setup-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recorder(table: Record<string, CommandResult>): { run: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  return { calls, run: async (c, a) => (calls.push([c, ...a].join(" ")), table[[c, ...a].join(" ")] ?? { code: 127, stdout: "" }) };
}

function deps(name: string, detect: Record<string, CommandResult>, over: Partial<GpuSetupDeps> = {}) {
  const npm = recorder({});
  npm.run = async (c, a) => (npm.calls.push([c, ...a].join(" ")), { code: 0, stdout: "" });
  const lines: string[] = [];
  const d: GpuSetupDeps = {
    run: recorder(detect).run,
    npm: npm.run,
    host: { platform: "linux", arch: "x64", readText: () => undefined },
    runtimeDir: join(dir, name, "data", "gpu-runtime"),
    version: "3.22.1",
    installedBeside: () => false,
    out: (l) => lines.push(l),
    ...over,
  };
  return { d, lines, npm: npm.calls };
}

describe("gpu setup flow (recorded detection, recorded npm)", () => {
  it("an RTX 4090 box gets the CUDA build installed into the data dir at node-llama-cpp's version", async () => {
    const { d, lines, npm } = deps("nvidia", { "nvidia-smi -L": { code: 0, stdout: fixture("nvidia-smi-L-2x4090.txt") } });
    const result = await runGpuSetup(d);
    expect(result).toMatchObject({ installed: true, record: { gpu: "cuda", version: "3.22.1" } });
    expect(npm).toEqual([
      `npm install --prefix ${d.runtimeDir} --save-exact --ignore-scripts --no-audit --no-fund @node-llama-cpp/linux-x64-cuda@3.22.1 @node-llama-cpp/linux-x64-cuda-ext@3.22.1`,
    ]);
    expect(lines[0]).toBe("gpu          NVIDIA: NVIDIA GeForce RTX 4090, NVIDIA GeForce RTX 4090 (from nvidia-smi -L)");
    expect(readGpuRuntimeRecord(d.runtimeDir)).toMatchObject({ gpu: "cuda", packages: ["@node-llama-cpp/linux-x64-cuda", "@node-llama-cpp/linux-x64-cuda-ext"] });
  });

  it("an AMD card seen only by lspci gets Vulkan, with a warning that the driver does not answer; --dry-run installs nothing", async () => {
    const { d, lines, npm } = deps("amd", { lspci: { code: 0, stdout: fixture("lspci-amd-7900xtx.txt") } }, { dryRun: true });
    expect(await runGpuSetup(d)).toMatchObject({ installed: false, reason: "dry run" });
    expect(npm).toEqual([]);
    expect(lines.join("\n")).toMatch(/warning +the GPU driver does not answer \(rocminfo\): the vulkan build needs it/);
    expect(lines.at(-1)).toBe(`would run    npm install --prefix ${d.runtimeDir} --save-exact --ignore-scripts --no-audit --no-fund @node-llama-cpp/linux-x64-vulkan@3.22.1`);
    expect(existsSync(d.runtimeDir)).toBe(false);
  });

  it("Apple Silicon: Metal is already in the lean install, so only the record is written", async () => {
    const { d, npm } = deps("apple", { "system_profiler SPDisplaysDataType": { code: 0, stdout: fixture("system-profiler-displays-m2pro.txt") } }, {
      host: { platform: "darwin", arch: "arm64", readText: () => undefined },
      installedBeside: (p) => p === "@node-llama-cpp/mac-arm64-metal",
    });
    expect(await runGpuSetup(d)).toMatchObject({ installed: true, record: { gpu: "metal", packages: [] } });
    expect(npm).toEqual([]);
  });

  it("no GPU: nothing installed, and why; a declined download changes nothing", async () => {
    const none = deps("none", {});
    expect(await runGpuSetup(none.d)).toMatchObject({ installed: false, reason: "no NVIDIA, AMD or Apple GPU was found" });
    const declined = deps("declined", { "nvidia-smi -L": { code: 0, stdout: fixture("nvidia-smi-L-2x4090.txt") } }, { confirm: async () => false });
    expect(await runGpuSetup(declined.d)).toMatchObject({ installed: false, reason: "declined" });
    expect(declined.npm).toEqual([]);
  });
});

type Run = { code: number | null; stdout: string; stderr: string };
function tessera(...args: string[]): Promise<Run> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(process.execPath, [TESSERA_BIN, ...args], {
    env: { ...process.env, TESSERA_HOME: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

describe("tessera gpu setup (real process)", () => {
  it.runIf(process.platform === "linux" && process.arch === "x64")("--build vulkan --dry-run prints the npm command for this install's node-llama-cpp and installs nothing", async () => {
    const home = join(dir, "cli");
    const run = await tessera("gpu", "setup", "--home", home, "--build", "vulkan", "--dry-run");
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^gpu {10}/);
    expect(run.stdout).toContain(
      `would run    npm install --prefix ${join(home, "data", "gpu-runtime")} --save-exact --ignore-scripts --no-audit --no-fund @node-llama-cpp/linux-x64-vulkan@${nodeLlamaCppVersion()}\n`,
    );
    expect(existsSync(join(home, "data"))).toBe(false);
  });

  it("refuses bad input with stable codes", async () => {
    const bad = await tessera("gpu", "setup", "--home", join(dir, "bad"), "--build", "rocm");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error [bad_request]: --build must be cuda, vulkan or metal, got "rocm"\n');
    const unknown = await tessera("gpu", "setup", "--frobnicate");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown option '--frobnicate'/);
    const help = await tessera("gpu", "setup", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--build <kind>[\s\S]*--dry-run[\s\S]*--yes/);
  });
});
