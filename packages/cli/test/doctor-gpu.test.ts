import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BackendAdapter, type CommandResult, loadNodeConfig, signerFromKeyFile } from "@tessera/node";
import type { Hardware } from "@tessera/protocol";
import { type CheckResult, runDoctor, type DoctorDeps } from "../src/doctor/run-doctor.js";

/** doctor's "embedded build" and "power cap" checks, on a node whose coordinator is not there (those checks fail; these run). */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-doctor-gpu-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fixture = (name: string) => readFileSync(join(__dirname, "..", "..", "node", "src", "power-cap", "fixtures", name), "utf8");
const NVIDIA: Hardware = { cpu_cores: 8, ram_mb: 32768, gpus: [{ vendor: "nvidia", name: "NVIDIA GeForce RTX 4090", vram_mb: 24564 }], tier: ">=24gb" };
const CPU: Hardware = { cpu_cores: 8, ram_mb: 32768, gpus: [], tier: "cpu" } as unknown as Hardware;

function embedded(build: string | undefined): BackendAdapter {
  return {
    kind: "embedded",
    health: async () => ({ ok: true }),
    listModels: async () => [{ id: "tiny", features: [] }],
    engineBuild: () => build,
    close: async () => {},
  } as unknown as BackendAdapter;
}

function deps(over: { watts?: number; build?: string | undefined; hardware?: Hardware; power?: CommandResult }): DoctorDeps {
  const home = join(dir, "node");
  return {
    cliVersion: "0.1.0",
    nodeVersion: "v20.19.0",
    loadConfig: () => {
      const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: "http://127.0.0.1:9" } });
      return { ...config, limits: { ...config.limits, max_power_watts: over.watts ?? 0 } };
    },
    readSigner: signerFromKeyFile,
    fetch: async () => {
      throw new Error("no coordinator in this test");
    },
    nowMs: () => Date.now(),
    run: async (cmd, args) => {
      if (cmd === "nvidia-smi" && args[0]?.startsWith("--query-gpu=power")) return over.power ?? { code: 127, stdout: "" };
      if (cmd === "nvidia-smi") return { code: 0, stdout: "550.54.14, NVIDIA GeForce RTX 4090\n" };
      return { code: 127, stdout: "" };
    },
    platform: "linux",
    diskSpace: () => ({ freeBytes: 500e9, totalBytes: 1000e9 }),
    openBackend: async () => embedded("build" in over ? over.build : "CPU build"),
    hardware: async () => over.hardware ?? NVIDIA,
  };
}
const check = (results: CheckResult[], name: string) => results.find((r) => r.name === name);

describe("doctor: which llama.cpp build the embedded engine uses", () => {
  it.each([
    ["the data dir's GPU build", { build: "cuda build (node-llama-cpp 3.22.1 in /d/gpu-runtime)" }, { status: "OK", detail: "cuda build (node-llama-cpp 3.22.1 in /d/gpu-runtime)" }],
    ["a GPU build that did not load", { build: "CPU build (the cuda build did not load: NoBinaryFoundError)" },
      { status: "WARN", detail: "CPU build (the cuda build did not load: NoBinaryFoundError); `tessera gpu setup` reinstalls it" }],
    ["the CPU build on a GPU machine", { build: "CPU build" }, { status: "WARN", detail: "CPU build, but this machine has NVIDIA GeForce RTX 4090: `tessera gpu setup` installs its GPU build" }],
    ["the CPU build with no GPU", { build: "CPU build", hardware: CPU }, { status: "OK", detail: "CPU build (no GPU found)" }],
  ] as const)("%s", async (_name, over, expected) => {
    expect(check(await runDoctor(deps(over)), "embedded build")).toEqual({ name: "embedded build", ...expected });
  });
});

describe("doctor: max_power_watts against the limit in force", () => {
  it("no check when no cap is set", async () => {
    expect(check(await runDoctor(deps({})), "power cap")).toBeUndefined();
  });
  it.each([
    ["in force on every GPU", { watts: 300, power: { code: 0, stdout: "300.00, 150.00, 450.00\n" } }, { status: "OK", detail: "300 W in force on 1 GPU" }],
    ["not applied (the daemon is not root)", { watts: 300, power: { code: 0, stdout: fixture("nvidia-smi-power-limits.csv") } },
      { status: "WARN", detail: "the GPU power limit is 300 W, 450 W, max_power_watts asks 300 W: not applied (it needs root); run `sudo nvidia-smi -pl 300`" }],
    ["outside the board's range", { watts: 100, power: { code: 0, stdout: "450.00, 150.00, 450.00\n" } }, { status: "WARN", detail: "max_power_watts = 100 is outside this GPU's range 150–450 W: nvidia-smi refuses it" }],
    ["a board with no power limit", { watts: 100, power: { code: 0, stdout: fixture("nvidia-smi-power-limits-na.csv") } }, { status: "WARN", detail: "this GPU reports no power limit ([N/A]): max_power_watts = 100 cannot be applied" }],
    ["no nvidia-smi", { watts: 250 }, { status: "WARN", detail: "max_power_watts = 250 is set but there is no nvidia-smi to apply it with: no cap is in force" }],
  ] as const)("%s", async (_name, over, expected) => {
    expect(check(await runDoctor(deps(over)), "power cap")).toEqual({ name: "power cap", ...expected });
  });
});
