import { describe, expect, it } from "vitest";
import { RECEIPT_VERSION, type ReceiptBody, generateKeyPair, receiptDigest, secretKeySigner, verifySchnorr } from "@tessera/protocol";
import { checkReceipt, checkReceiptAgainst } from "./check-receipt.js";
import type { ServedEntry } from "./served-journal.js";
import { ServedTally } from "./served-tally.js";
import { answerReceiptSign } from "./sign-receipts.js";
import { ServedJournal } from "./served-journal.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import vectors from "../../../protocol/test-vectors.json" with { type: "json" };

const node = secretKeySigner(generateKeyPair().secretKeyHex);
const SHA = "ab".repeat(32);
const COMMIT = "cd".repeat(32);

const body: ReceiptBody = {
  v: RECEIPT_VERSION,
  receipt_id: "6f1c1a52-3b8e-4c1e-9a55-0d4f0f6f2b10",
  job_id: "job-1",
  segment: 1,
  node_id: node.publicKeyHex,
  operator_id: "aa".repeat(32),
  client_key_id: "key:k1",
  model: "tiny",
  model_sha256: SHA,
  input_tokens: 12,
  output_tokens: 40,
  price: { input_per_1k: 100, output_per_1k: 400 },
  amount: 18,
  fee: 2,
  reward: 0,
  output_sha256: "ee".repeat(32),
  result_commitment: COMMIT,
  completed_at: "2026-12-01T10:00:00.000Z",
  platform_key: "ff".repeat(32),
};
const entry: ServedEntry = { job_id: "job-1", at: 1, model: "tiny", model_sha256: SHA, end: "finished", output_tokens: 40, result_commitment: COMMIT, stop: false };

describe("checkReceipt", () => {
  it("signs a receipt that matches what the node served", () => {
    expect(checkReceipt(body, entry, node.publicKeyHex)).toEqual({ sign: true });
  });

  it.each<[string, Partial<ReceiptBody>, Partial<ServedEntry> | undefined, string]>([
    ["another node's receipt", { node_id: "bb".repeat(32) }, {}, "not_this_node"],
    ["a fee larger than the amount", { fee: 19 }, {}, "fee_exceeds_amount"],
    ["a job the node never served", { job_id: "job-2" }, undefined, "job_not_served"],
    ["another model file", { model_sha256: "12".repeat(32) }, {}, "model_mismatch"],
    ["a model file where the node had none", {}, { model_sha256: null }, "model_mismatch"],
    ["more tokens than a finished turn streamed", { output_tokens: 41 }, {}, "output_tokens_mismatch"],
    ["fewer tokens than a finished turn streamed", { output_tokens: 39 }, {}, "output_tokens_mismatch"],
    ["more tokens than a cancelled turn streamed", { output_tokens: 41 }, { end: "cancelled" }, "output_tokens_mismatch"],
    ["more tokens than a lost turn streamed", { output_tokens: 41 }, { end: "lost", result_commitment: null }, "output_tokens_mismatch"],
    ["a commitment the node did not make", { result_commitment: "99".repeat(32) }, {}, "result_commitment_mismatch"],
    ["a commitment where the node made none", {}, { result_commitment: null }, "result_commitment_mismatch"],
    ["the node's commitment left out", { result_commitment: null }, {}, "result_commitment_mismatch"],
  ])("refuses %s", (_name, change, entryChange, code) => {
    const decision = checkReceipt({ ...body, ...change }, entryChange === undefined ? undefined : { ...entry, ...entryChange }, node.publicKeyHex);
    expect(decision.sign).toBe(false);
    expect(decision).toMatchObject({ code });
    if (!decision.sign) expect(decision.reason.length).toBeGreaterThan(10);
  });

  it.each<[string, Partial<ReceiptBody>, Partial<ServedEntry>]>([
    ["fewer tokens for a cancelled turn", { output_tokens: 30, result_commitment: null }, { end: "cancelled", result_commitment: null }],
    ["fewer tokens where a stop sequence ended the answer, without the commitment", { output_tokens: 30, result_commitment: null }, { stop: true }],
    ["any count for a turn only recorded as accepted (the daemon was killed)", { output_tokens: 5000, result_commitment: null }, { end: "accepted", output_tokens: null, result_commitment: null }],
    ["no model file on either side", { model_sha256: null }, { model_sha256: null }],
  ])("signs %s", (_name, change, entryChange) => {
    expect(checkReceipt({ ...body, ...change }, { ...entry, ...entryChange }, node.publicKeyHex)).toEqual({ sign: true });
  });

  it("signs when any segment the node served of the job matches, otherwise refuses with the latest reason", () => {
    const lost = { ...entry, end: "lost" as const, output_tokens: 3, result_commitment: null };
    expect(checkReceiptAgainst(body, [lost, entry], node.publicKeyHex)).toEqual({ sign: true });
    expect(checkReceiptAgainst({ ...body, output_tokens: 2, result_commitment: null }, [lost, entry], node.publicKeyHex)).toEqual({ sign: true });
    expect(checkReceiptAgainst({ ...body, output_tokens: 99 }, [lost, entry], node.publicKeyHex)).toMatchObject({ sign: false, code: "output_tokens_mismatch" });
    expect(checkReceiptAgainst(body, [], node.publicKeyHex)).toMatchObject({ sign: false, code: "job_not_served" });
  });
});

describe("answerReceiptSign", () => {
  it("signs in the node domain or refuses with code and reason, from the journal", () => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-receipts-"));
    try {
      const journal = ServedJournal.open({ path: join(dir, "j.jsonl"), now: () => 1 });
      journal.accepted({ job_id: "job-1", model: "tiny", model_sha256: SHA, stop: false });
      journal.ended({ job_id: "job-1", model: "tiny", model_sha256: SHA, stop: false, end: "finished", output_tokens: 40, result_commitment: COMMIT });
      const deps = { journal, signer: node, logger: pino({ level: "silent" }) };
      const signed = answerReceiptSign({ type: "receipt.sign", receipt: body }, deps);
      expect(signed.type).toBe("receipt.signed");
      if (signed.type === "receipt.signed") expect(verifySchnorr(signed.signature, receiptDigest(body, "node"), node.publicKeyHex)).toBe(true);
      const refused = answerReceiptSign({ type: "receipt.sign", receipt: { ...body, job_id: "job-9" } }, deps);
      expect(refused).toMatchObject({ type: "receipt.refused", receipt_id: body.receipt_id });
      if (refused.type === "receipt.refused") expect(refused.reason).toMatch(/^job_not_served: /);
      journal.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ServedTally", () => {
  it("counts token ids once their text arrives, as the coordinator credits them", () => {
    const t = new ServedTally();
    t.observe({ type: "text-delta", text: "", tokens: [1] }); // half a character
    t.observe({ type: "text-delta", text: "é", tokens: [2] });
    t.observe({ type: "text-delta", text: "", tokens: [] });
    t.observe({ type: "text-delta", text: " ok", tokens: [3, 4] });
    t.observe({ type: "usage", prompt_tokens: 3, completion_tokens: 99 }); // ignored: the ids are exact
    expect(t.outputTokens).toBe(4);
  });

  it("without ids, counts one a delta and takes the node's usage figure when larger", () => {
    const t = new ServedTally();
    t.observe({ type: "text-delta", text: "hello there" });
    t.observe({ type: "text-delta", text: "!" });
    expect(t.outputTokens).toBe(2);
    t.observe({ type: "usage", prompt_tokens: 3, completion_tokens: 4 });
    expect(t.outputTokens).toBe(4);
  });

  it("counts tool calls by their ids or one a call", () => {
    const call = { id: "c1", type: "function" as const, function: { name: "f", arguments: "{}" } };
    const withIds = new ServedTally();
    withIds.observe({ type: "tool-calls", calls: [call], tokens: [1, 2, 3] });
    expect(withIds.outputTokens).toBe(3);
    const without = new ServedTally();
    without.observe({ type: "tool-calls", calls: [call, { ...call, id: "c2" }] });
    expect(without.outputTokens).toBe(2);
  });
});

describe("the committed receipt test vector", () => {
  it("signs the committed test vector's receipt with exactly the vector's node signature", () => {
    const v = vectors.receipt;
    const b = v.body as ReceiptBody;
    const dir = mkdtempSync(join(tmpdir(), "tessera-receipts-"));
    try {
      const journal = ServedJournal.open({ path: join(dir, "j.jsonl"), now: () => 1 });
      journal.accepted({ job_id: b.job_id, model: b.model, model_sha256: b.model_sha256, stop: false });
      journal.ended({ job_id: b.job_id, model: b.model, model_sha256: b.model_sha256, stop: false, end: "finished", output_tokens: b.output_tokens, result_commitment: b.result_commitment });
      const signer = secretKeySigner(v.node_secret_key_hex, () => new Uint8Array(32));
      const answer = answerReceiptSign({ type: "receipt.sign", receipt: b }, { journal, signer, logger: pino({ level: "silent" }) });
      expect(answer).toEqual({ type: "receipt.signed", receipt_id: b.receipt_id, signature: v.node_signature });
      journal.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
