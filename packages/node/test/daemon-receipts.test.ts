import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RECEIPT_VERSION, type ReceiptBody, type Signer, generateKeyPair, receiptDigest, resultCommitment, secretKeySigner, verifySchnorr } from "@tessera/protocol";
import { loadNodeConfig } from "../src/config.js";
import { startDaemon } from "../src/daemon.js";
import { createNodeLogger } from "../src/logger.js";
import { FakeClock } from "./fake-clock.js";
import { FakeCoordinator, waitFor } from "./fake-coordinator.js";
import { ScriptedBackend } from "./scripted-backend.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SHA = "5e".repeat(32);
const HARDWARE = { cpu_cores: 8, ram_mb: 32768, gpus: [] };

async function daemonIn(home: string, signer: Signer) {
  const clock = new FakeClock(1_800_000_000_000);
  const coordinator = await new FakeCoordinator(() => Math.floor(clock.now() / 1000)).listen();
  const config = loadNodeConfig({ home, env: {}, flags: { coordinator_url: coordinator.url, shutdown_grace_s: 1 } });
  const { logger } = createNodeLogger({ level: "silent", stdout: false });
  const daemon = await startDaemon(config, {
    createBackend: async () => new ScriptedBackend(["Hel", "lo", "!"], { tokenIds: true, sha256: SHA }),
    logger,
    signer,
    clock,
    random: () => 0,
    detectHardware: async () => HARDWARE,
    gpuStats: async () => [],
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await daemon.stop();
    await coordinator.close();
  };
  cleanups.push(stop);
  await daemon.ready;
  return { coordinator, stop };
}

function receiptFor(signer: Signer, jobId: string, outputTokens: number, commitment: string | null): ReceiptBody {
  return {
    v: RECEIPT_VERSION,
    receipt_id: "6f1c1a52-3b8e-4c1e-9a55-0d4f0f6f2b10",
    job_id: jobId,
    segment: 1,
    node_id: signer.publicKeyHex,
    operator_id: signer.publicKeyHex,
    client_key_id: "key:k1",
    model: "tiny",
    model_sha256: SHA,
    input_tokens: 5,
    output_tokens: outputTokens,
    price: { input_per_1k: 100, output_per_1k: 400 },
    amount: 2,
    fee: 1,
    reward: 0,
    output_sha256: "ee".repeat(32),
    result_commitment: commitment,
    completed_at: "2027-01-15T08:00:00.000Z",
    platform_key: "ff".repeat(32),
  };
}

describe("the daemon signs receipts for work it served", () => {
  it("checks receipt.sign against its journal, also after a restart, and refuses one that does not match", async () => {
    const home = mkdtempSync(join(tmpdir(), "tessera-daemon-receipts-"));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    const signer = secretKeySigner(generateKeyPair().secretKeyHex);
    const sampling = { max_tokens: 16, temperature: 0, top_p: 1, seed: 9 };

    const first = await daemonIn(home, signer);
    first.coordinator.send({ type: "job.assign", job_id: "paid-job", model: "tiny", messages: [{ role: "user", content: "hi" }], sampling });
    await waitFor("finish part", () => first.coordinator.partsOf("paid-job").some((p) => p.type === "finish"));
    await first.stop();

    // A new process on the same data dir: it still knows what it served.
    const second = await daemonIn(home, signer);
    const commitment = resultCommitment({ jobId: "paid-job", modelSha256: SHA, sampling, finishReason: "stop", outputTokens: [100, 101, 102], logprobs: [] });
    const good = receiptFor(signer, "paid-job", 3, commitment);
    second.coordinator.send({ type: "receipt.sign", receipt: good });
    await waitFor("receipt.signed", () => second.coordinator.messages.some((m) => m.type === "receipt.signed"));
    const signed = second.coordinator.messages.find((m) => m.type === "receipt.signed");
    expect(signed).toMatchObject({ receipt_id: good.receipt_id });
    expect(verifySchnorr((signed as { signature: string }).signature, receiptDigest(good, "node"), signer.publicKeyHex)).toBe(true);

    second.coordinator.send({ type: "receipt.sign", receipt: { ...good, output_tokens: 4 } });
    second.coordinator.send({ type: "receipt.sign", receipt: { ...good, job_id: "never-served" } });
    await waitFor("two refusals", () => second.coordinator.messages.filter((m) => m.type === "receipt.refused").length === 2);
    const reasons = second.coordinator.messages.flatMap((m) => (m.type === "receipt.refused" ? [m.reason] : []));
    expect(reasons[0]).toMatch(/^output_tokens_mismatch: /);
    expect(reasons[1]).toMatch(/^job_not_served: /);
  });
});
