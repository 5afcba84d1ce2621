import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RECEIPT_VERSION, type ReceiptBody, decodeEmbedding, generateKeyPair, receiptDigest, secretKeySigner, verifySchnorr } from "@tessera/protocol";
import { loadNodeConfig } from "../src/config.js";
import { startDaemon } from "../src/daemon.js";
import { createNodeLogger } from "../src/logger.js";
import { FakeClock } from "./fake-clock.js";
import { FakeCoordinator, waitFor } from "./fake-coordinator.js";
import { ScriptedBackend } from "./scripted-backend.js";

const SHA = "5e".repeat(32);
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("the daemon answers embed.request", () => {
  it("sends the backend's vectors, journals the request as served work with no output, and signs its receipt", async () => {
    const home = mkdtempSync(join(tmpdir(), "tessera-daemon-embed-"));
    const signer = secretKeySigner(generateKeyPair().secretKeyHex);
    const clock = new FakeClock(1_800_000_000_000);
    const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
    const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url, shutdown_grace_s: 1 } });
    const backend = Object.assign(new ScriptedBackend(["x"], { sha256: SHA }), {
      embed: async (request: { input: { texts: string[] } | { tokens: number[][] } }) => ({
        vectors: ("texts" in request.input ? request.input.texts : request.input.tokens).map((_, i) => [i, 0.5]),
        promptTokens: 6,
      }),
    });
    const daemon = await startDaemon(config, { createBackend: async () => backend, logger: createNodeLogger({ level: "silent", stdout: false }).logger, signer, clock, random: () => 0, detectHardware: async () => ({ cpu_cores: 8, ram_mb: 32768, gpus: [] }), gpuStats: async () => [] });
    cleanup = async () => {
      await daemon.stop();
      await coordinator.close();
      rmSync(home, { recursive: true, force: true });
    };
    await daemon.ready;

    coordinator.send({ type: "embed.request", request_id: "emb-1", model: "tiny", input: { texts: ["a", "b"] } });
    await waitFor("embed.result", () => coordinator.messages.some((m) => m.type === "embed.result"));
    const result = coordinator.messages.find((m) => m.type === "embed.result") as { dimensions: number; embeddings: string[]; prompt_tokens: number };
    expect(result).toMatchObject({ request_id: "emb-1", dimensions: 2, prompt_tokens: 6 });
    expect(result.embeddings.map((e) => Array.from(decodeEmbedding(e)!))).toEqual([[0, 0.5], [1, 0.5]]);

    const receipt: ReceiptBody = {
      v: RECEIPT_VERSION,
      receipt_id: "6f1c1a52-3b8e-4c1e-9a55-0d4f0f6f2b10",
      job_id: "emb-1",
      segment: 1,
      node_id: signer.publicKeyHex,
      operator_id: signer.publicKeyHex,
      client_key_id: "key:k1",
      model: "tiny",
      model_sha256: SHA,
      input_tokens: 6,
      output_tokens: 0,
      price: { input_per_1k: 100, output_per_1k: 400 },
      amount: 1,
      fee: 0,
      reward: 0,
      output_sha256: "ee".repeat(32),
      result_commitment: null,
      completed_at: "2027-01-15T08:00:00.000Z",
      platform_key: "ff".repeat(32),
    };
    coordinator.send({ type: "receipt.sign", receipt });
    coordinator.send({ type: "receipt.sign", receipt: { ...receipt, receipt_id: "7f1c1a52-3b8e-4c1e-9a55-0d4f0f6f2b10", output_tokens: 3 } });
    await waitFor("an answer to each receipt", () => coordinator.messages.filter((m) => m.type === "receipt.signed" || m.type === "receipt.refused").length === 2);
    const signed = coordinator.messages.find((m) => m.type === "receipt.signed") as { signature: string };
    expect(verifySchnorr(signed.signature, receiptDigest(receipt, "node"), signer.publicKeyHex)).toBe(true);
    expect(coordinator.messages.find((m) => m.type === "receipt.refused")).toMatchObject({ reason: expect.stringMatching(/^output_tokens_mismatch/) });

    coordinator.send({ type: "embed.request", request_id: "emb-2", model: "tiny", input: { tokens: [[1]] } });
    await waitFor("second embed.result", () => coordinator.messages.filter((m) => m.type === "embed.result").length === 2);
  });
});
