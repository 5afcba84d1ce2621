import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, NodeConfig } from "@tessera/node";
import { runSetup, type SetupDeps } from "../src/setup/run-setup.js";

/** `tessera setup` on the embedded engine runs the GPU step before opening the backend; its failure is a warning. */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-setup-gpu-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function deps(name: string, gpuSetup: SetupDeps["gpuSetup"]) {
  const out: string[] = [];
  const err: string[] = [];
  const order: string[] = [];
  const d: SetupDeps = {
    home: join(dir, name),
    flags: { backend: "embedded", model_path: join(dir, "tiny.gguf"), coordinator_url: "http://127.0.0.1:9" },
    env: {},
    yes: true,
    ask: async (_q, a) => a,
    hardware: async () => ({ cpu_cores: 8, ram_mb: 32768, gpus: [{ vendor: "nvidia", name: "RTX 4090", vram_mb: 24564 }], tier: ">=24gb" }),
    fetch: async () => {
      throw new Error("no coordinator here");
    },
    nowMs: () => Date.now(),
    sleep: async () => {},
    openBackend: async () => {
      order.push("openBackend");
      return { kind: "embedded", health: async () => ({ ok: true }), listModels: async () => [{ id: "tiny", features: [] }], close: async () => {} } as unknown as BackendAdapter;
    },
    out: { write: (s: string) => void out.push(s) },
    err: { write: (s: string) => void err.push(s) },
    gpuSetup,
  };
  return { d, out: () => out.join(""), err: () => err.join(""), order };
}

describe("tessera setup's GPU step", () => {
  it("runs for the embedded engine with the written config, before the engine is opened; --yes confirms", async () => {
    const seen: Array<{ dataDir: string; confirmed: boolean }> = [];
    const run = deps("ok", async (config: NodeConfig, confirm) => {
      seen.push({ dataDir: config.paths.dataDir, confirmed: await confirm("download?") });
      run.order.push("gpuSetup");
    });
    await runSetup(run.d);
    expect(seen).toEqual([{ dataDir: join(dir, "ok", "data"), confirmed: true }]);
    expect(run.order).toEqual(["gpuSetup", "openBackend"]);
  });

  it("a failed install is a warning naming `gpu setup`; setup carries on", async () => {
    const run = deps("fails", async () => {
      throw new Error("npm could not install @node-llama-cpp/linux-x64-cuda@3.22.1 (exit 1)");
    });
    const result = await runSetup(run.d);
    expect(result.backend).toBe("embedded");
    expect(run.err()).toContain(
      "warning: the GPU build was not installed (npm could not install @node-llama-cpp/linux-x64-cuda@3.22.1 (exit 1)); the embedded engine runs on the CPU: `tessera gpu setup` tries again\n",
    );
  });
});
