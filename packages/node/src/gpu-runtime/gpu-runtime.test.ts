import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Llama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CommandResult, CommandRunner } from "../hardware/command-runner.js";
import { type GpuHost, detectGpu, parseLspci, parseNvidiaSmiList, parseRocminfo, parseSystemProfilerDisplays } from "./detect-gpu.js";
import { chooseGpuBuild } from "./gpu-builds.js";
import { GPU_RUNTIME_RECORD, nodeLlamaCppVersion, readGpuRuntimeRecord, writeGpuRuntimeRecord } from "./gpu-runtime-record.js";
import { gpuInstallCommand, installGpuRuntime } from "./install-gpu-runtime.js";
import { type GetLlama, gpuRuntimeState, loadLlama } from "./load-llama.js";

const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)), "utf8");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-gpu-runtime-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Answers each command from a table of recorded outputs; anything else is a missing tool (127). */
function recorded(table: Record<string, CommandResult>): { run: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    run: async (command, args) => {
      const line = [command, ...args].join(" ");
      calls.push(line);
      return table[line] ?? { code: 127, stdout: "" };
    },
  };
}
const linux = (files: Record<string, string> = {}): GpuHost => ({ platform: "linux", arch: "x64", readText: (p) => files[p] });
const ok = (stdout: string): CommandResult => ({ code: 0, stdout });

describe("GPU detection on recorded outputs", () => {
  it("parses each tool's output", () => {
    expect(parseNvidiaSmiList(fixture("nvidia-smi-L-2x4090.txt"))).toEqual(["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"]);
    expect(parseRocminfo(fixture("rocminfo-7900xtx.txt"))).toEqual(["Radeon RX 7900 XTX", "AMD Radeon Graphics"]);
    expect(parseLspci(fixture("lspci-nvidia-laptop.txt"))).toEqual({ nvidia: ["GeForce RTX 3050 Mobile"], amd: [] });
    expect(parseLspci(fixture("lspci-amd-7900xtx.txt"))).toEqual({ nvidia: [], amd: ["Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M", "Raphael"] });
    expect(parseLspci(fixture("lspci-server-no-gpu.txt"))).toEqual({ nvidia: [], amd: [] });
    expect(parseSystemProfilerDisplays(fixture("system-profiler-displays-m2pro.txt"))).toEqual([{ name: "Apple M2 Pro", vendor: "Apple (0x106b)" }]);
    expect(parseSystemProfilerDisplays(fixture("system-profiler-displays-intel-mac.txt"))).toEqual([
      { name: "Intel UHD Graphics 630", vendor: "Intel" },
      { name: "AMD Radeon Pro 5500M", vendor: "AMD (0x1002)" },
    ]);
  });

  const cases: Array<[string, Record<string, CommandResult>, GpuHost, object]> = [
    ["nvidia-smi -L answers", { "nvidia-smi -L": ok(fixture("nvidia-smi-L-2x4090.txt")) }, linux({ "/proc/driver/nvidia/version": fixture("proc-driver-nvidia-version.txt") }),
      { vendor: "nvidia", devices: ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"], source: "nvidia-smi -L", driverLoaded: true, driver: "550.54.14" }],
    ["the driver is loaded but nvidia-smi is missing", {}, linux({ "/proc/driver/nvidia/version": fixture("proc-driver-nvidia-version.txt") }),
      { vendor: "nvidia", devices: [], source: "/proc/driver/nvidia/version", driverLoaded: true, driver: "550.54.14" }],
    ["ROCm's rocminfo", { rocminfo: ok(fixture("rocminfo-7900xtx.txt")) }, linux(), { vendor: "amd", devices: ["Radeon RX 7900 XTX", "AMD Radeon Graphics"], source: "rocminfo", driverLoaded: true }],
    ["rocm-smi only", { "rocm-smi --showproductname": ok("GPU[0]\t\t: Card Series: \t\tRadeon RX 7900 XTX\nGPU[0]\t\t: Card Vendor: \t\tAdvanced Micro Devices, Inc. [AMD/ATI]\n") }, linux(),
      { vendor: "amd", devices: ["Radeon RX 7900 XTX"], source: "rocm-smi", driverLoaded: true }],
    ["an NVIDIA card with no driver, seen by lspci", { lspci: ok(fixture("lspci-nvidia-laptop.txt")) }, linux(), { vendor: "nvidia", devices: ["GeForce RTX 3050 Mobile"], source: "lspci", driverLoaded: false }],
    ["an AMD card without ROCm, seen by lspci", { lspci: ok(fixture("lspci-amd-7900xtx.txt")) }, linux(), { vendor: "amd", source: "lspci", driverLoaded: false }],
    ["a server with only an emulated VGA", { lspci: ok(fixture("lspci-server-no-gpu.txt")) }, linux(), { vendor: "none", devices: [], source: "lspci" }],
    ["nothing answers", {}, linux(), { vendor: "none", devices: [], source: "" }],
    ["Apple Silicon", { "system_profiler SPDisplaysDataType": ok(fixture("system-profiler-displays-m2pro.txt")) }, { platform: "darwin", arch: "arm64", readText: () => undefined },
      { vendor: "apple", devices: ["Apple M2 Pro"], source: "system_profiler" }],
    ["an Intel Mac with a Radeon", { "system_profiler SPDisplaysDataType": ok(fixture("system-profiler-displays-intel-mac.txt")) }, { platform: "darwin", arch: "x64", readText: () => undefined },
      { vendor: "amd", devices: ["AMD Radeon Pro 5500M"] }],
    ["arm64 macOS without system_profiler", {}, { platform: "darwin", arch: "arm64", readText: () => undefined }, { vendor: "apple", source: "arch" }],
  ];
  it.each(cases)("%s", async (_name, table, host, expected) => {
    expect(await detectGpu(recorded(table).run, host)).toMatchObject(expected);
  });
});

describe("which build", () => {
  it.each([
    ["linux", "x64", "nvidia", undefined, { gpu: "cuda", packages: ["@node-llama-cpp/linux-x64-cuda", "@node-llama-cpp/linux-x64-cuda-ext"] }],
    ["linux", "x64", "nvidia", "vulkan", { gpu: "vulkan", packages: ["@node-llama-cpp/linux-x64-vulkan"] }],
    ["linux", "x64", "amd", undefined, { gpu: "vulkan", packages: ["@node-llama-cpp/linux-x64-vulkan"] }],
    ["win32", "x64", "nvidia", undefined, { gpu: "cuda", packages: ["@node-llama-cpp/win-x64-cuda", "@node-llama-cpp/win-x64-cuda-ext"] }],
    ["darwin", "arm64", "apple", undefined, { gpu: "metal", packages: ["@node-llama-cpp/mac-arm64-metal"] }],
  ] as const)("%s-%s %s (asked: %s)", (platform, arch, vendor, requested, build) => {
    expect(chooseGpuBuild(platform, arch, vendor, requested)).toEqual({ ok: true, build });
  });
  it("says why when there is none", () => {
    expect(chooseGpuBuild("linux", "x64", "none")).toEqual({ ok: false, reason: "no NVIDIA, AMD or Apple GPU was found" });
    expect(chooseGpuBuild("linux", "arm64", "nvidia")).toEqual({ ok: false, reason: "node-llama-cpp publishes no GPU build for linux-arm64" });
    expect(chooseGpuBuild("darwin", "x64", "amd")).toEqual({ ok: false, reason: "node-llama-cpp publishes no GPU build for darwin-x64" });
    expect(chooseGpuBuild("linux", "x64", "amd", "metal")).toEqual({ ok: false, reason: "node-llama-cpp publishes no metal build for linux-x64 (it has: cuda, vulkan)" });
  });
});

describe("installing a build into the data dir (npm through the injected runner)", () => {
  const build = { gpu: "cuda" as const, packages: ["@node-llama-cpp/linux-x64-cuda", "@node-llama-cpp/linux-x64-cuda-ext"] };
  it("runs npm install --prefix <data dir>/gpu-runtime with the packages at node-llama-cpp's version, then writes the record", async () => {
    const runtimeDir = join(dir, "install-ok", "gpu-runtime");
    const rec = recorded({
      [`npm install --prefix ${runtimeDir} --save-exact --ignore-scripts --no-audit --no-fund @node-llama-cpp/linux-x64-cuda@3.22.1 @node-llama-cpp/linux-x64-cuda-ext@3.22.1`]: ok("added 2 packages in 40s\n"),
    });
    const record = await installGpuRuntime({ runtimeDir, build, version: "3.22.1", run: rec.run, now: () => new Date("2026-12-05T00:00:00Z") });
    expect(rec.calls).toHaveLength(1);
    expect(record).toEqual({ gpu: "cuda", packages: build.packages, version: "3.22.1", installedAt: "2026-12-05T00:00:00.000Z" });
    expect(readGpuRuntimeRecord(runtimeDir)).toEqual(record);
    expect(gpuInstallCommand("C:\\tessera\\gpu-runtime", build, "3.22.1", "win32")[0]).toBe("npm.cmd");
  });

  it("a failed npm leaves no record (the engine stays on the CPU build) and says what npm said", async () => {
    const runtimeDir = join(dir, "install-fail", "gpu-runtime");
    writeGpuRuntimeRecord(runtimeDir, { gpu: "vulkan", packages: ["@node-llama-cpp/linux-x64-vulkan"], version: "3.22.1", installedAt: "" });
    const failing: CommandRunner = async () => ({ code: 1, stdout: "", stderr: "npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/@node-llama-cpp%2flinux-x64-cuda\n" });
    await expect(installGpuRuntime({ runtimeDir, build, version: "3.22.1", run: failing })).rejects.toMatchObject({ code: "unreachable", message: expect.stringMatching(/exit 1\): npm error code E404 \/ npm error 404 Not Found/) });
    expect(existsSync(join(runtimeDir, GPU_RUNTIME_RECORD))).toBe(false);
    await expect(installGpuRuntime({ runtimeDir, build, version: "3.22.1", run: async () => ({ code: 127, stdout: "" }) })).rejects.toMatchObject({ code: "not_found" });
  });

  it("Metal already in the lean install: only the record is written, npm is not run", async () => {
    const runtimeDir = join(dir, "metal", "gpu-runtime");
    const rec = recorded({});
    const record = await installGpuRuntime({ runtimeDir, build: { gpu: "metal", packages: ["@node-llama-cpp/mac-arm64-metal"] }, version: "3.22.1", run: rec.run, alreadyInstalled: true });
    expect(rec.calls).toEqual([]);
    expect(record.packages).toEqual([]);
  });
});

/** A package standing in for a GPU build: importing it leaves a marker, so a test sees who resolved it. */
function fakeBuildPackage(runtimeDir: string, name: string, version: string): string {
  const pkgDir = join(runtimeDir, "node_modules", ...name.split("/"));
  mkdirSync(join(pkgDir, "dist"), { recursive: true });
  const marker = join(runtimeDir, "imported.txt");
  writeFileSync(join(pkgDir, "package.json"), JSON.stringify({ name, version, type: "module", exports: { ".": "./dist/index.js" } }));
  writeFileSync(
    join(pkgDir, "dist", "index.js"),
    `import { appendFileSync } from "node:fs";\nappendFileSync(${JSON.stringify(marker)}, "imported ${name}\\n");\nexport function getBinsDir() { return { binsDir: ${JSON.stringify(join(pkgDir, "bins"))}, packageVersion: ${JSON.stringify(version)} }; }\n`,
  );
  return marker;
}

describe("loading llama.cpp: the data dir's GPU build, else the CPU build", () => {
  const version = nodeLlamaCppVersion();
  const fakeLlama = (gpu: string | false) => ({ gpu, dispose: async () => {} }) as unknown as Llama;

  it("no GPU build installed: CPU, quietly", async () => {
    const asked: unknown[] = [];
    const loaded = await loadLlama({ runtimeDir: join(dir, "none"), getLlama: async (o) => (asked.push(o.gpu), fakeLlama(false)), version });
    expect(loaded).toMatchObject({ build: "cpu", detail: "CPU build" });
    expect(asked).toEqual([false]);
  });

  it("an installed build is asked for by name after the resolve hook points at the data dir; a failure falls back to CPU with a log line", async () => {
    const runtimeDir = join(dir, "vulkan", "gpu-runtime");
    fakeBuildPackage(runtimeDir, "@node-llama-cpp/linux-x64-vulkan", version);
    writeGpuRuntimeRecord(runtimeDir, { gpu: "vulkan", packages: ["@node-llama-cpp/linux-x64-vulkan"], version, installedAt: "" });
    const hooks: unknown[] = [];
    const logs: string[] = [];
    const log = (level: string, message: string) => logs.push(`${level}: ${message}`);
    const good = await loadLlama({ runtimeDir, version, log, installHook: (d, p) => hooks.push([d, p]), getLlama: async (o) => fakeLlama(o.gpu) });
    expect(good).toMatchObject({ build: "vulkan", detail: `vulkan build (node-llama-cpp ${version} in ${runtimeDir})` });
    expect(hooks).toEqual([[runtimeDir, ["@node-llama-cpp/linux-x64-vulkan"]]]);
    expect(logs).toEqual([`info: embedded engine: llama.cpp vulkan build (node-llama-cpp ${version} in ${runtimeDir})`]);

    // max_vram_fraction: node-llama-cpp is told to leave the rest of the GPU's memory unused when it fits layers and context.
    const paddings: Array<number | undefined> = [];
    await loadLlama({ runtimeDir, version, installHook: () => {}, maxVramFraction: 0.8, getLlama: async (o) => (paddings.push(o.vramPadding?.(10_000)), fakeLlama(o.gpu)) });
    await loadLlama({ runtimeDir, version, installHook: () => {}, getLlama: async (o) => (paddings.push(o.vramPadding?.(10_000)), fakeLlama(o.gpu)) });
    expect(paddings).toEqual([2_000, undefined]);

    logs.length = 0;
    const noDevice: GetLlama = async (o) => {
      if (o.gpu) throw new Error("NoBinaryFoundError");
      return fakeLlama(false);
    };
    const fell = await loadLlama({ runtimeDir, version, log, installHook: () => {}, getLlama: noDevice });
    expect(fell).toMatchObject({ build: "cpu", detail: "CPU build (the vulkan build did not load: NoBinaryFoundError)" });
    expect(logs).toEqual(["warn: embedded engine: the vulkan build did not load: NoBinaryFoundError; using the CPU build"]);

    // node-llama-cpp answering with another build than asked counts as not loading it.
    const other = await loadLlama({ runtimeDir, version, installHook: () => {}, getLlama: async () => fakeLlama(false) });
    expect(other.build).toBe("cpu");
  });

  it("a build for another node-llama-cpp version, or with its packages gone, is not tried", async () => {
    const runtimeDir = join(dir, "stale", "gpu-runtime");
    writeGpuRuntimeRecord(runtimeDir, { gpu: "cuda", packages: ["@node-llama-cpp/linux-x64-cuda"], version: "0.0.1", installedAt: "" });
    expect(gpuRuntimeState(runtimeDir, version)).toMatchObject({ usable: false, detail: expect.stringMatching(/is for node-llama-cpp 0\.0\.1, this install has .*run `tessera gpu setup` again/) });
    writeGpuRuntimeRecord(runtimeDir, { gpu: "cuda", packages: ["@node-llama-cpp/linux-x64-cuda"], version, installedAt: "" });
    expect(gpuRuntimeState(runtimeDir, version)).toMatchObject({ usable: false, detail: "the cuda build is incomplete (missing @node-llama-cpp/linux-x64-cuda): run `tessera gpu setup` again" });
    const asked: unknown[] = [];
    const loaded = await loadLlama({ runtimeDir, version, getLlama: async (o) => (asked.push(o.gpu), fakeLlama(false)) });
    expect(loaded.build).toBe("cpu");
    expect(asked).toEqual([false]);
  });

  it.runIf(process.platform === "linux" && process.arch === "x64")(
    "for real: node-llama-cpp's own lookup imports the data dir's package through the hook, and the engine falls back to the CPU build",
    async () => {
      const runtimeDir = join(dir, "real", "gpu-runtime");
      const marker = fakeBuildPackage(runtimeDir, "@node-llama-cpp/linux-x64-vulkan", version);
      writeGpuRuntimeRecord(runtimeDir, { gpu: "vulkan", packages: ["@node-llama-cpp/linux-x64-vulkan"], version, installedAt: "" });
      // A fresh process running the compiled module, as the daemon does (the hook is process-wide).
      const loadLlamaJs = fileURLToPath(new URL("../../dist/gpu-runtime/load-llama.js", import.meta.url));
      const nodeLlamaCpp = pathToFileURL(createRequire(import.meta.url).resolve("node-llama-cpp")).href;
      const script = `
        import { getLlama, LlamaLogLevel } from ${JSON.stringify(nodeLlamaCpp)};
        import { loadLlama } from ${JSON.stringify(loadLlamaJs)};
        const loaded = await loadLlama({ runtimeDir: ${JSON.stringify(runtimeDir)}, getLlama, logLevel: LlamaLogLevel.error, log: (l, m) => console.log(l + ": " + m) });
        console.log("build=" + loaded.build + " gpu=" + loaded.llama.gpu);
        await loaded.llama.dispose();`;
      // A file, not \`node -e\`: node-llama-cpp tests a binding in a child process that inherits execArgv.
      const scriptFile = join(dir, "real", "load.mjs");
      writeFileSync(scriptFile, script);
      const child = spawn(process.execPath, [scriptFile], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((r) => child.once("close", r));
      expect({ code, out }).toMatchObject({ code: 0, out: expect.stringContaining("build=cpu gpu=false") });
      expect(out).toContain("warn: embedded engine: the vulkan build did not load");
      expect(readFileSync(marker, "utf8")).toBe("imported @node-llama-cpp/linux-x64-vulkan\n");
    },
  );
});
