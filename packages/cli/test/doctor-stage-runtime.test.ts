import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BackendAdapter, loadNodeConfig, resolveStageRuntime, signerFromKeyFile, type StageBackend, type StageRuntimeChoice } from "@tessera/node";
import { type CheckResult, runDoctor, type DoctorDeps } from "../src/doctor/run-doctor.js";

/**
 * doctor's "stage runtime" line: the configured stage_backend, what it resolves to on this machine (auto: ggml-cpu
 * when its self-check passes, else wasm and why), ggml's build and folder, and what auto would take under another
 * setting; FAIL when ggml-cpu is asked for, unusable, and the node holds spans. Run on a node whose coordinator is not
 * there (those checks fail; this one runs).
 */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-doctor-stage-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function deps(settings: { stage_backend?: StageBackend; stage_model?: string }, stageRuntime?: (b: StageBackend) => StageRuntimeChoice): DoctorDeps {
  return {
    cliVersion: "0.1.0",
    nodeVersion: "v20.19.0",
    // The stage settings as a config file or flags would set them.
    loadConfig: () => ({ ...loadNodeConfig({ home: join(dir, "node"), env: {}, flags: { coordinator_url: "http://127.0.0.1:9" } }), stage_backend: "wasm", stage_model: "", ...settings }),
    readSigner: signerFromKeyFile,
    fetch: async () => {
      throw new Error("no coordinator in this test");
    },
    nowMs: () => Date.now(),
    run: async () => ({ code: 127, stdout: "" }),
    platform: "linux",
    diskSpace: () => ({ freeBytes: 500e9, totalBytes: 1000e9 }),
    openBackend: async () => ({ kind: "embedded", health: async () => ({ ok: true }), listModels: async () => [], close: async () => {} }) as unknown as BackendAdapter,
    hardware: async () => ({ cpu_cores: 8, ram_mb: 32768, gpus: [], tier: "cpu" }) as never,
    ...(stageRuntime ? { stageRuntime } : {}),
  };
}

const line = async (d: DoctorDeps): Promise<CheckResult | undefined> => (await runDoctor(d)).find((r) => r.name === "stage runtime");
const GGML: StageRuntimeChoice = { runtime: "ggml-cpu", detail: "libggml-cpu-haswell.so, @node-llama-cpp/linux-x64 3.22.1, ggml v0.5.0, from /n/bins/linux-x64; self-check passed" };
const usable = (b: StageBackend): StageRuntimeChoice => (b === "wasm" ? { runtime: "wasm", detail: "WebAssembly SIMD" } : GGML);
const unusable = (b: StageBackend): StageRuntimeChoice => {
  const why = "the ggml libraries are not installed (no @node-llama-cpp/linux-x64 package)";
  if (b === "wasm") return { runtime: "wasm", detail: "WebAssembly SIMD" };
  return b === "auto" ? { runtime: "wasm", detail: `ggml-cpu not usable: ${why}` } : { runtime: undefined, detail: `stage backend ggml-cpu is not usable here: ${why}` };
};

describe("doctor: which runtime layer spans run on", () => {
  it("no line without the seam (the other doctor tests' deps)", async () => {
    expect(await line(deps({}))).toBeUndefined();
  });

  it.each([
    ["auto, ggml usable", { stage_backend: "auto", stage_model: "/m.gguf" }, usable,
      { status: "OK", detail: `stage_backend = auto: spans run on ggml-cpu (${GGML.detail})` }],
    ["wasm, with what auto would take", { stage_backend: "wasm", stage_model: "/m.gguf" }, usable,
      { status: "OK", detail: `stage_backend = wasm: spans run on wasm (WebAssembly SIMD); auto would run ggml-cpu (${GGML.detail})` }],
    ["auto falling back to wasm, and why", { stage_backend: "auto", stage_model: "/m.gguf" }, unusable,
      { status: "OK", detail: "stage_backend = auto: spans run on wasm (ggml-cpu not usable: the ggml libraries are not installed (no @node-llama-cpp/linux-x64 package))" }],
    ["ggml-cpu asked for and unusable, with spans to hold", { stage_backend: "ggml-cpu", stage_model: "/m.gguf" }, unusable,
      { status: "FAIL", detail: "stage_backend = ggml-cpu: stage backend ggml-cpu is not usable here: the ggml libraries are not installed (no @node-llama-cpp/linux-x64 package)" }],
    ["ggml-cpu asked for and unusable, no spans", { stage_backend: "ggml-cpu" }, unusable,
      { status: "WARN", detail: "stage_backend = ggml-cpu: stage backend ggml-cpu is not usable here: the ggml libraries are not installed (no @node-llama-cpp/linux-x64 package) (no stage_model is set: this node holds no layer spans)" }],
  ] as const)("%s", async (_name, settings, seam, expected) => {
    expect(await line(deps(settings, seam))).toEqual({ name: "stage runtime", ...expected });
  });

  it("a GPU backend: the device it runs on, or a FAIL saying what is missing when the node holds spans", async () => {
    const why = "libggml-vulkan.so loaded but did not initialise: the Vulkan loader found no driver for a GPU";
    const gpu = (b: StageBackend): StageRuntimeChoice =>
      b === "vulkan" ? { runtime: "vulkan", detail: "GPU 0 (vulkan device 0, 20.0 of 24.0 GiB free), libggml-vulkan.so from /rt" } : usable(b);
    const noGpu = (b: StageBackend): StageRuntimeChoice =>
      b === "vulkan" ? { runtime: undefined, code: "unsupported_parameter", detail: `stage backend vulkan cannot run here: ${why}` } : usable(b);
    expect(await line(deps({ stage_backend: "vulkan", stage_model: "/m.gguf" }, gpu))).toEqual({
      name: "stage runtime", status: "OK",
      detail: `stage_backend = vulkan: spans run on vulkan (GPU 0 (vulkan device 0, 20.0 of 24.0 GiB free), libggml-vulkan.so from /rt); auto would run ggml-cpu (${GGML.detail})`,
    });
    expect(await line(deps({ stage_backend: "vulkan", stage_model: "/m.gguf" }, noGpu))).toEqual({ name: "stage runtime", status: "FAIL", detail: `stage_backend = vulkan: stage backend vulkan cannot run here: ${why}` });
  });

  it("on this machine (the node's real probe): auto runs ggml-cpu, names the library it loaded and why each GPU backend was skipped", async () => {
    const result = await line(deps({ stage_backend: "auto", stage_model: "/m.gguf" }, resolveStageRuntime));
    expect(result?.status).toBe("OK");
    expect(result?.detail).toMatch(/^stage_backend = auto: spans run on ggml-cpu \(libggml-cpu\S*\.(so|dylib|dll), @node-llama-cpp\/\S+ \d+\.\d+\.\d+, ggml v\S+, from \/\S+\/bins\/\S+; self-check passed; skipped cuda: .*; metal: .*; vulkan: .*\)$/);
  });

  it("`tessera doctor --json` of the compiled CLI prints the line", () => {
    const bin = join(import.meta.dirname, "..", "bin", "tessera.js");
    const run = spawnSync(process.execPath, [bin, "doctor", "--json", "--home", join(dir, "cli"), "--coordinator", "http://127.0.0.1:9", "--stage-backend", "wasm"], { encoding: "utf8", timeout: 60_000 });
    const checks = (JSON.parse(run.stdout) as { checks: CheckResult[] }).checks;
    const stage = checks.find((c) => c.name === "stage runtime");
    expect(stage?.status).toBe("OK");
    expect(stage?.detail).toMatch(/^stage_backend = wasm: spans run on wasm \(WebAssembly SIMD\); auto would run ggml-cpu \(libggml-cpu\S+, .*; self-check passed; skipped cuda: .*\) \(no stage_model is set: this node holds no layer spans\)$/);
  }, 90_000);
});
