import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, loadCoordinatorConfig, startCoordinator, type RunningCoordinator } from "@tessera/coordinator";
import { createNodeLogger, initNode, loadNodeConfig, signerFromKeyFile, startDaemon, type DaemonHandle } from "@tessera/node";
import { verifyReceipt } from "@tessera/protocol";
import { startFakeOllama, type FakeOllama } from "@tessera/testkit";

/**
 * Receipts signed end to end over real sockets: a real coordinator (ledger on, every model free), a node daemon
 * in-process on a fake Ollama speaking its real wire format. The coordinator issues a receipt when the job ends, asks
 * the node over its session, and the node signs it because it matches the daemon's own served-work journal.
 */
let dir: string;
let coordinator: RunningCoordinator;
let ollama: FakeOllama;
let daemon: DaemonHandle;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-receipt-signing-"));
  coordinator = await startCoordinator(loadCoordinatorConfig({ dataDir: join(dir, "coordinator"), port: "0", host: "127.0.0.1", open: true }, {}), { logger: createLogger("silent") });
  ollama = await startFakeOllama({ installed: [{ name: "qwen2.5:0.5b", sizeBytes: 397_821_319, parameterSize: "494M" }] });
  const home = join(dir, "node");
  initNode({ home, env: {}, settings: { coordinator_url: coordinator.url, backend: "ollama", ollama_host: ollama.url, heartbeat_interval_s: 3600 } });
  const config = loadNodeConfig({ home, env: {}, requireConfigFile: true });
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  daemon = await startDaemon(config, {
    logger,
    signer: signerFromKeyFile(config.paths.keyFile),
    detectHardware: async () => ({ cpu_cores: 8, ram_mb: 32768, gpus: [{ vendor: "nvidia", name: "RTX 4060", vram_mb: 8188 }], tier: ">=8gb" }),
    gpuStats: async () => [],
  });
  await daemon.ready;
});

afterAll(async () => {
  await daemon?.stop();
  await coordinator?.close();
  await ollama?.http.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("receipts signed by the node that served the job", () => {
  it("the node checks the coordinator's receipt against its journal and signs it; the receipt then verifies", async () => {
    const res = await fetch(`${coordinator.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "qwen2.5:0.5b", messages: [{ role: "user", content: "say something" }], max_tokens: 12 }),
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { id: string; usage: { completion_tokens: number } };
    const store = coordinator.ctx.store;
    const receipt = await until("a receipt signed by the node", async () => {
      const [r] = await store.listReceipts({ nodeId: daemon.nodeId, limit: 10 });
      return r?.node_signature ? r : undefined;
    });
    expect(answer.usage.completion_tokens).toBeGreaterThan(0);
    expect(receipt.output_tokens).toBe(answer.usage.completion_tokens);
    const { holdUntil: _h, statusChangedAt: _s, payoutBatchId: _p, ...wire } = receipt;
    expect(verifyReceipt(wire, { platformKey: coordinator.ctx.platform.publicKeyHex })).toMatchObject({ valid: true, platform: "valid", node: "valid" });
    const metrics = await coordinator.ctx.metrics.registry.getSingleMetricAsString("tessera_receipt_signatures_total");
    expect(metrics).toContain('tessera_receipt_signatures_total{outcome="signed"} 1');
    expect(metrics).not.toContain('outcome="refused"');
  });
});
