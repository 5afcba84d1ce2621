import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, loadCoordinatorConfig, startCoordinator, type RunningCoordinator } from "@tessera/coordinator";
import { createNodeLogger, initNode, loadNodeConfig, signerFromKeyFile, startDaemon, type DaemonHandle } from "@tessera/node";
import { type FakeOllama, makeTinyModel, startFakeOllama } from "@tessera/testkit";

/**
 * An Ollama node and an embedded node serving the same GGUF are the same model file to the coordinator (issue 17 §3,
 * "the model's identity"): a real coordinator (ledger on, every model free) and two daemons in-process, one on the
 * embedded engine with the file, one on a fake Ollama whose Modelfile names that file as its blob
 * (`blobs/sha256-<the file's SHA-256>`, Ollama's layout). Both register the same `sha256` for the model, and the
 * receipts each is paid by name the same model file. The embedded node's answer carries a signed result commitment
 * naming the file, which the coordinator accepts (it refuses one naming another file than the node registered); the
 * Ollama node's carries none, since Ollama reports no token ids to commit to.
 */
const MODEL = "same:tiny";
let dir: string;
let fileSha256: string;
let coordinator: RunningCoordinator;
let ollama: FakeOllama;
const daemons: DaemonHandle[] = [];

async function daemon(name: string, settings: Record<string, unknown>): Promise<DaemonHandle> {
  const home = join(dir, name);
  initNode({ home, env: {}, settings: { coordinator_url: coordinator.url, heartbeat_interval_s: 3600, ...settings } });
  const config = loadNodeConfig({ home, env: {}, requireConfigFile: true });
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  const handle = await startDaemon(config, {
    logger,
    signer: signerFromKeyFile(config.paths.keyFile),
    detectHardware: async () => ({ cpu_cores: 8, ram_mb: 32768, gpus: [], tier: "cpu" }),
    gpuStats: async () => [],
  });
  daemons.push(handle);
  await handle.ready;
  return handle;
}

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 1000; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function chat(): Promise<void> {
  const res = await fetch(`${coordinator.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Write about rivers." }], max_tokens: 8, temperature: 0 }),
  });
  expect(res.status).toBe(200);
  await res.json();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-ollama-identity-"));
  const modelPath = join(dir, `${MODEL}.gguf`);
  const made = await makeTinyModel({ path: modelPath, seed: 11, vocab: "spm" });
  fileSha256 = made.sha256;
  mkdirSync(join(dir, "blobs"));
  const blob = join(dir, "blobs", `sha256-${made.sha256}`);
  copyFileSync(modelPath, blob);
  ollama = await startFakeOllama({ installed: [{ name: MODEL, sizeBytes: made.sizeBytes, ggufPath: blob }] });
  coordinator = await startCoordinator(loadCoordinatorConfig({ dataDir: join(dir, "coordinator"), port: "0", host: "127.0.0.1", open: true }, {}), { logger: createLogger("silent") });
}, 120_000);

afterAll(async () => {
  for (const d of daemons.splice(0).reverse()) await d.stop().catch(() => undefined);
  await coordinator?.close();
  await ollama?.http.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("an Ollama node and an embedded node with the same GGUF", () => {
  it("register the same model sha256, and their answers and receipts name the same file", async () => {
    const onOllama = await daemon("ollama-node", { backend: "ollama", ollama_host: ollama.url });
    const store = coordinator.ctx.store;
    const registry = coordinator.ctx.registry;
    expect(registry.get(onOllama.nodeId)?.models.find((m) => m.id === MODEL)).toMatchObject({ backend: "ollama", sha256: fileSha256 });

    // Only the Ollama node serves the model yet: its answer and receipt.
    await chat();
    const ollamaReceipt = await until("the Ollama node's receipt", async () => (await store.listReceipts({ nodeId: onOllama.nodeId, limit: 10 }))[0]);
    expect(ollamaReceipt.model).toBe(MODEL);
    expect(ollamaReceipt.model_sha256).toBe(fileSha256);
    const commitments = () => coordinator.ctx.metrics.registry.getSingleMetricAsString("tessera_result_commitments_total");
    expect(await commitments()).toContain('tessera_result_commitments_total{outcome="missing"} 1');

    const onEmbedded = await daemon("embedded-node", { backend: "embedded", model_path: join(dir, `${MODEL}.gguf`) });
    const embeddedModel = registry.get(onEmbedded.nodeId)?.models.find((m) => m.id === MODEL);
    expect(embeddedModel).toMatchObject({ backend: "embedded", sha256: fileSha256 });
    expect(registry.get(onOllama.nodeId)?.models.find((m) => m.id === MODEL)?.sha256).toBe(embeddedModel?.sha256);

    // Now only the embedded node: its answer and receipt name the same file.
    await onOllama.stop();
    await chat();
    const embeddedReceipt = await until("the embedded node's receipt", async () => (await store.listReceipts({ nodeId: onEmbedded.nodeId, limit: 10 }))[0]);
    expect(embeddedReceipt.model_sha256).toBe(fileSha256);

    // Its signed result commitment names the file it registered: accepted.
    expect(await commitments()).toContain('tessera_result_commitments_total{outcome="valid"} 1');
    expect(await commitments()).not.toContain('outcome="invalid"');
  });
});
