import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { loadNodeConfig } from "@tessera/node";
import { createOperatorToken, type NodeCommandView, signRequest } from "@tessera/protocol";
import { GPU_8GB, eventually, startInventoryCluster, type InventoryCluster } from "./inventory-cluster.js";

/**
 * Must-show 3: a model install queued through the coordinator API reaches the daemon (session push, or the
 * heartbeat answer when the push was missed), the fake Ollama pulls it with progress, and served_models and the
 * coordinator's /api/v1/models show it; remove does the reverse. Real HTTP and WebSocket throughout.
 */
let c: InventoryCluster;
afterEach(async () => {
  await c?.close();
});

async function modelsOnNetwork(): Promise<string[]> {
  const res = await fetch(`${c.coordinator.url}/api/v1/models`);
  return ((await res.json()) as { models: { id: string }[] }).models.map((m) => m.id);
}

async function queue(type: string, model: string, auth: "token" | "signed" = "token"): Promise<NodeCommandView> {
  const path = `/api/v1/nodes/${c.nodeId}/commands`;
  const body = JSON.stringify({ type, model });
  const headers: Record<string, string> =
    auth === "token"
      ? { authorization: `Bearer ${createOperatorToken(c.signer, { nowSeconds: Math.floor(Date.now() / 1000) })}` }
      : signRequest(c.signer, { method: "POST", path, body });
  const res = await fetch(c.coordinator.url + path, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body });
  expect(res.status).toBe(201);
  return (await res.json()) as NodeCommandView;
}

async function finished(id: string): Promise<NodeCommandView> {
  const token = createOperatorToken(c.signer, { nowSeconds: Math.floor(Date.now() / 1000) });
  return eventually(async () => {
    const res = await fetch(`${c.coordinator.url}/api/v1/nodes/${c.nodeId}/commands`, { headers: { authorization: `Bearer ${token}` } });
    const view = ((await res.json()) as { commands: NodeCommandView[] }).commands.find((x) => x.id === id);
    return view && (view.status === "succeeded" || view.status === "failed") ? view : undefined;
  });
}

const servedInToml = () => loadNodeConfig({ home: c.home, env: {}, requireConfigFile: true }).served_models;

describe("model install and remove through the coordinator's command queue", () => {
  it("install: pushed to the daemon, pulled with progress, in node.toml and on /api/v1/models; remove reverses it", async () => {
    c = await startInventoryCluster({ settings: { served_models: ["qwen2.5:1.5b"] } });
    expect(await modelsOnNetwork()).toEqual(["qwen2.5:1.5b"]);

    const install = await queue("model_install", "qwen2.5:0.5b");
    const done = await finished(install.id);
    expect(done).toMatchObject({ status: "succeeded", progress: 1, error: null });
    // Progress went up with byte counts from Ollama's pull stream.
    const running = c.reports.filter((r) => r.path.endsWith(`${install.id}/report`) && r.body.status === "running");
    expect(running.some((r) => typeof r.body.completed_bytes === "number" && (r.body.total_bytes as number) > 0)).toBe(true);
    expect(c.reports.at(-1)!.body).toEqual({ status: "succeeded", progress: 1 });
    expect(c.ollama.installed.has("qwen2.5:0.5b")).toBe(true);
    expect(servedInToml()).toEqual(["qwen2.5:1.5b", "qwen2.5:0.5b"]);
    // Synced at once: the heartbeat interval is an hour, yet the coordinator already routes it.
    expect(await modelsOnNetwork()).toEqual(["qwen2.5:0.5b", "qwen2.5:1.5b"]);
    expect(c.daemon.status().servedModels).toContain("qwen2.5:0.5b");
    expect(readFileSync(c.config.paths.configFile, "utf8")).toMatch(/# Models this node advertises/);

    const remove = await queue("model_remove", "qwen2.5:0.5b", "signed");
    expect(await finished(remove.id)).toMatchObject({ status: "succeeded" });
    expect(c.ollama.installed.has("qwen2.5:0.5b")).toBe(false);
    expect(servedInToml()).toEqual(["qwen2.5:1.5b"]);
    expect(await modelsOnNetwork()).toEqual(["qwen2.5:1.5b"]);
  });

  it("a command whose session push was missed arrives with the next heartbeat answer", async () => {
    c = await startInventoryCluster({ settings: { heartbeat_interval_s: 0.2 } });
    // Straight into the store: as if the node's session was down when it was queued.
    await c.coordinator.ctx.store.insertNodeCommand({ id: "missed-push", nodeId: c.nodeId, type: "model_install", model: "qwen2.5:0.5b", issuedAt: new Date() });
    expect(await finished("missed-push")).toMatchObject({ status: "succeeded" });
    // served_models was empty (= everything the backend has): left empty, and the new model is advertised.
    expect(servedInToml()).toEqual([]);
    expect(await modelsOnNetwork()).toEqual(["qwen2.5:0.5b", "qwen2.5:1.5b"]);
  });

  it("a command a daemon left running when it died is failed, not left running, when the node's next daemon registers", async () => {
    c = await startInventoryCluster({
      beforeDaemon: async (coordinator, nodeId) => {
        // What a daemon killed mid-pull leaves behind: the node known, its command reported running, then silence.
        const store = coordinator.ctx.store;
        await store.upsertNode({ id: nodeId, version: "old", hardware: GPU_8GB, models: [], maxConcurrency: 1, operatorId: nodeId, delegationExpiresAt: null }, new Date());
        await store.insertNodeCommand({ id: "cut-off", nodeId, type: "model_install", model: "qwen2.5:0.5b", issuedAt: new Date() });
        await store.updateNodeCommand("cut-off", { status: "running", progress: 0.4, at: new Date() });
      },
    });
    const view = await finished("cut-off");
    expect(view.status).toBe("failed");
    expect(view.error).toMatch(/^node_disconnected: the node restarted while the command was running; queue it again$/);
    // The operator queues it again, and this daemon runs it.
    expect(await finished((await queue("model_install", "qwen2.5:0.5b")).id)).toMatchObject({ status: "succeeded" });
  });

  it("refuses an oversized model before pulling it, and fails a remove of a model the backend lacks", async () => {
    c = await startInventoryCluster();
    const big = await finished((await queue("model_install", "llama3.3:70b")).id);
    expect(big.status).toBe("failed");
    // 6.4 GiB: the 8 GiB GPU at max_vram_fraction's default 0.8.
    expect(big.error).toMatch(/^bad_request: llama3\.3:70b needs about \d+\.\d GiB but this node has 6\.4 GiB/);
    expect(c.ollama.installed.has("llama3.3:70b")).toBe(false);

    const unknown = await finished((await queue("model_install", "nosuch:1b")).id);
    expect(unknown).toMatchObject({ status: "failed" });
    expect(unknown.error).toMatch(/^model_not_found:/);

    const absent = await finished((await queue("model_remove", "qwen2.5:0.5b")).id);
    expect(absent.error).toMatch(/^model_not_found: backend ollama does not have qwen2\.5:0\.5b/);
    expect(await modelsOnNetwork()).toEqual(["qwen2.5:1.5b"]);
  });
});

describe("the daemon's inventory at start", () => {
  it("warns about served_models the backend lacks and models too large for the node, and advertises neither", async () => {
    c = await startInventoryCluster({
      installed: [
        { name: "qwen2.5:1.5b", sizeBytes: 986_000_000 },
        { name: "llama3.3:70b", sizeBytes: 42_520_413_916 },
      ],
      settings: { served_models: ["qwen2.5:1.5b", "llama3.3:70b", "mistral:7b"] },
    });
    const log = c.logLines.join("");
    expect(log).toMatch(/served_models lists mistral:7b but backend ollama does not have it; not advertised/);
    expect(log).toMatch(/llama3\.3:70b needs about \d+\.\d GiB but this node has 6\.4 GiB; not advertised/);
    expect(c.daemon.status().servedModels).toEqual(["qwen2.5:1.5b"]);
    expect(await modelsOnNetwork()).toEqual(["qwen2.5:1.5b"]);
  });
});
