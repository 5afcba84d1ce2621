import { afterEach, describe, expect, it } from "vitest";
import { createBackendFromConfig, createNodeLogger, loadNodeConfig, type NodeConfig } from "@tessera/node";
import type { Hardware } from "@tessera/protocol";
import { formatProgressLine } from "../../src/inventory/progress-bar.js";
import { installModelAction, listModelsAction, recommend, removeModelAction, type ModelActionDeps } from "../../src/inventory/model-actions.js";
import { GPU_8GB, startInventoryCluster, type InventoryCluster } from "./inventory-cluster.js";

let c: InventoryCluster;
afterEach(async () => {
  await c?.close();
});

function capture() {
  const text: string[] = [];
  return { sink: { write: (s: string) => void text.push(s), isTTY: false }, text: () => text.join("") };
}

function depsFor(cluster: InventoryCluster, hardware: Hardware = GPU_8GB) {
  const out = capture();
  const err = capture();
  const config = (): NodeConfig => loadNodeConfig({ home: cluster.home, env: {}, requireConfigFile: true });
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  const deps: ModelActionDeps = {
    config: config(),
    signer: cluster.signer,
    fetch: (input, init) => fetch(input, init),
    nowMs: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    hardware: async () => hardware,
    openBackend: () => createBackendFromConfig(config(), { fetch: (input, init) => fetch(input, init), logger }),
    out: out.sink,
    err: err.sink,
    pollMs: 20,
  };
  return { deps, out, err, config };
}

async function onNetwork(): Promise<string[]> {
  const res = await fetch(`${c.coordinator.url}/api/v1/models`);
  return ((await res.json()) as { models: { id: string }[] }).models.map((m) => m.id);
}

describe("tessera model install / remove / list", () => {
  it("with the daemon running: goes through the command queue; the coordinator advertises the model when the command returns", async () => {
    c = await startInventoryCluster({ settings: { served_models: ["qwen2.5:1.5b"] } });
    const { deps, out, config } = depsFor(c);
    expect(await installModelAction(deps, "qwen2.5:0.5b")).toEqual({ model: "qwen2.5:0.5b", via: "daemon" });
    expect(out.text()).toMatch(/queued install of qwen2\.5:0\.5b for the running daemon/);
    expect(await onNetwork()).toEqual(["qwen2.5:0.5b", "qwen2.5:1.5b"]);
    expect(config().served_models).toEqual(["qwen2.5:1.5b", "qwen2.5:0.5b"]);

    expect(await removeModelAction(depsFor(c).deps, "qwen2.5:0.5b")).toEqual({ model: "qwen2.5:0.5b", via: "daemon" });
    expect(await onNetwork()).toEqual(["qwen2.5:1.5b"]);
    await expect(removeModelAction(depsFor(c).deps, "qwen2.5:0.5b")).rejects.toMatchObject({ code: "model_not_found" });
  });

  it("with the daemon stopped: pulls straight into the backend with a progress bar and speed, and updates node.toml", async () => {
    c = await startInventoryCluster({ withDaemon: false, settings: { served_models: ["qwen2.5:1.5b"] } });
    const { deps, out, config } = depsFor(c);
    expect(await installModelAction(deps, "qwen2.5:0.5b")).toEqual({ model: "qwen2.5:0.5b", via: "backend" });
    expect(out.text()).toMatch(/pulling manifest/);
    expect(out.text()).toMatch(/\[#{20}\]  100%  397\.8 MB \/ 397\.8 MB  \d+(\.\d)? [kMG]?B\/s/);
    expect(config().served_models).toEqual(["qwen2.5:1.5b", "qwen2.5:0.5b"]);

    const rows = await listModelsAction(depsFor(c).deps);
    expect(rows).toEqual([
      { name: "qwen2.5:0.5b", size_bytes: 397_821_319, backend: "ollama", status: "installed", served: true, fits: true, required_mb: expect.any(Number) },
      { name: "qwen2.5:1.5b", size_bytes: 986_000_000, backend: "ollama", status: "installed", served: true, fits: true, required_mb: expect.any(Number) },
    ]);

    await removeModelAction(depsFor(c).deps, "qwen2.5:0.5b");
    expect(config().served_models).toEqual(["qwen2.5:1.5b"]);
    expect(c.ollama.installed.has("qwen2.5:0.5b")).toBe(false);
    const after = await listModelsAction({ ...depsFor(c).deps, config: { ...config(), served_models: ["qwen2.5:1.5b", "ghost:7b"] } });
    expect(after.map((r) => [r.name, r.status])).toEqual([["qwen2.5:1.5b", "installed"], ["ghost:7b", "missing"]]);
  });

  it("refuses an oversized model with a warning; --force installs it but it is never advertised", async () => {
    c = await startInventoryCluster({ withDaemon: false, settings: { served_models: ["qwen2.5:1.5b"] } });
    const { deps, err, config } = depsFor(c);
    await expect(installModelAction(deps, "llama3.3:70b")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/needs about .* GiB but this node has 8\.0 GiB; not installed/) });
    expect(err.text()).toMatch(/^warning: llama3\.3:70b needs about/);
    expect(c.ollama.installed.has("llama3.3:70b")).toBe(false);
    await installModelAction(deps, "llama3.3:70b", { force: true });
    expect(c.ollama.installed.has("llama3.3:70b")).toBe(true);
    expect(config().served_models).toEqual(["qwen2.5:1.5b"]);
    expect((await listModelsAction(depsFor(c).deps)).find((r) => r.name === "llama3.3:70b")).toMatchObject({ served: false, fits: false });
  });

  it("bad input: empty or spaced names, unknown models, a backend that cannot install; nothing changes", async () => {
    c = await startInventoryCluster({ withDaemon: false, settings: { served_models: ["qwen2.5:1.5b"] } });
    const { deps, config } = depsFor(c);
    for (const name of ["", "  ", "two words", undefined]) {
      await expect(installModelAction(deps, name)).rejects.toMatchObject({ code: "bad_request" });
      await expect(removeModelAction(deps, name)).rejects.toMatchObject({ code: "bad_request" });
    }
    await expect(installModelAction(deps, "nosuch:1b")).rejects.toMatchObject({ code: "model_not_found" });
    await expect(removeModelAction(deps, "nosuch:1b")).rejects.toMatchObject({ code: "model_not_found" });
    const noPull = { ...deps, openBackend: async () => ({ ...(await deps.openBackend()), pull: undefined, remove: undefined, kind: "vllm" }) };
    await expect(installModelAction(noPull, "qwen2.5:0.5b")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/backend vllm cannot install models/) });
    expect(config().served_models).toEqual(["qwen2.5:1.5b"]);
    expect([...c.ollama.installed.keys()]).toEqual(["qwen2.5:1.5b"]);
  });
});

describe("tessera model recommend", () => {
  it("names this node's tier and its default model, and which tiers' defaults fit", () => {
    const r = recommend(GPU_8GB);
    expect(r.tier).toBe(">=8gb");
    expect(r.tiers.find((t) => t.thisNode)).toMatchObject({ model: "llama3.1:8b", fits: true });
    expect(r.tiers.filter((t) => t.fits).map((t) => t.tier)).toEqual([">=8gb", "cpu"]);
    expect(recommend({ cpu_cores: 4, ram_mb: 8192, gpus: [], tier: "cpu" }).tiers.find((t) => t.thisNode)?.model).toBe("qwen2.5:1.5b");
  });
});

describe("progress line", () => {
  it("shows a bar, percent, bytes and speed", () => {
    expect(formatProgressLine({ status: "pulling abc", completedBytes: 500_000_000, totalBytes: 1_000_000_000 }, 84_100_000)).toBe(
      "pulling abc  [##########----------]   50%  500.0 MB / 1.0 GB  84.1 MB/s",
    );
    expect(formatProgressLine({ status: "pulling manifest" }, undefined)).toBe("pulling manifest");
  });
});
