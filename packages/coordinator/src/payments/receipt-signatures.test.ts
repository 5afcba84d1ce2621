import { describe, expect, it } from "vitest";
import { AfterIoQueue, type CoordinatorMessage, RECEIPT_VERSION, type Receipt, type ReceiptBody, generateKeyPair, receiptDigest, secretKeySigner, signReceipt, verifyReceipt } from "@tessera/protocol";
import vectors from "../../../protocol/test-vectors.json" with { type: "json" };
import { createLogger } from "../logger.js";
import { wasmSchnorrVerifier } from "@tessera/protocol/wasm-schnorr";
import type { ReceiptRecord } from "../store/types.js";
import { MAX_GATHERED_SIGNATURES, ReceiptSignatures, type ReceiptSignatureOutcome, UNSIGNED_OFFERED_PER_SESSION } from "./receipt-signatures.js";

const platform = secretKeySigner(generateKeyPair().secretKeyHex);
const node = secretKeySigner(generateKeyPair().secretKeyHex);
const other = secretKeySigner(generateKeyPair().secretKeyHex);

function receipt(n: number, signer = node): ReceiptRecord {
  const body: ReceiptBody = {
    v: RECEIPT_VERSION,
    receipt_id: `6f1c1a52-3b8e-4c1e-9a55-${String(n).padStart(12, "0")}`,
    job_id: `job-${n}`,
    segment: 1,
    node_id: signer.publicKeyHex,
    operator_id: "aa".repeat(32),
    client_key_id: "key:k1",
    model: "tiny",
    model_sha256: null,
    input_tokens: 1,
    output_tokens: 2,
    price: { input_per_1k: 10, output_per_1k: 40 },
    amount: 1,
    fee: 0,
    reward: 0,
    output_sha256: "ee".repeat(32),
    result_commitment: null,
    completed_at: new Date(Date.UTC(2026, 11, 1, 0, n)).toISOString(),
    platform_key: platform.publicKeyHex,
  };
  return { ...body, status: "held", platform_signature: signReceipt(platform, body, "platform"), node_signature: null, holdUntil: new Date(0), statusChangedAt: new Date(0), payoutBatchId: null };
}

/** The store port, in memory: just the three methods the class uses, each call counted. */
class MemoryReceipts {
  readonly rows = new Map<string, ReceiptRecord>();
  limits: number[] = [];
  calls = { getReceipts: 0, setReceiptNodeSignatures: 0 };
  constructor(list: ReceiptRecord[]) {
    for (const r of list) this.rows.set(r.receipt_id, r);
  }
  async getReceipts(ids: readonly string[]) {
    this.calls.getReceipts++;
    return ids.flatMap((id) => this.rows.get(id) ?? []);
  }
  async setReceiptNodeSignatures(signatures: ReadonlyArray<{ id: string; signature: string }>) {
    this.calls.setReceiptNodeSignatures++;
    if (new Set(signatures.map((s) => s.id)).size !== signatures.length) throw new Error("an id given twice");
    return signatures.flatMap(({ id, signature }) => {
      const r = this.rows.get(id);
      if (!r || r.node_signature !== null) return [];
      this.rows.set(id, { ...r, node_signature: signature });
      return [id];
    });
  }
  async listUnsignedReceipts(nodeId: string, limit: number) {
    this.limits.push(limit);
    return [...this.rows.values()].filter((r) => r.node_id === nodeId && r.node_signature === null).sort((a, b) => a.completed_at.localeCompare(b.completed_at)).slice(0, limit);
  }
}

function setup(list: ReceiptRecord[], online: string[] = [node.publicKeyHex], flushMs = 0) {
  const store = new MemoryReceipts(list);
  const sent: Array<{ to: string; message: CoordinatorMessage }> = [];
  const sessions = new Map(online.map((id) => [id, { session: { send: (message: CoordinatorMessage) => sent.push({ to: id, message }) } }]));
  const outcomes: ReceiptSignatureOutcome[] = [];
  const rs = new ReceiptSignatures({
    registry: { get: (id: string) => sessions.get(id) as never },
    messenger: { send: (id, message) => (sessions.get(id)?.session.send(message), sessions.has(id)) },
    store,
    logger: createLogger("silent"),
    verifier: wasmSchnorrVerifier,
    afterIo: new AfterIoQueue(),
    metrics: { outcome: (o) => outcomes.push(o) },
    flushMs,
  });
  return { rs, store, sent, outcomes };
}

const sign = (r: Receipt, signer = node) => signReceipt(signer, r, "node");

describe("ReceiptSignatures", () => {
  it("asks an online node to sign, with the body only; an offline node or a signed receipt is not asked", () => {
    const r = receipt(1);
    const { rs, sent } = setup([r]);
    rs.request(r);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.message.type).toBe("receipt.sign");
    const body = (sent[0]!.message as { receipt: Record<string, unknown> }).receipt;
    expect(body).not.toHaveProperty("status");
    expect(body).not.toHaveProperty("platform_signature");
    expect(body).not.toHaveProperty("holdUntil");
    rs.request({ ...r, node_signature: "00".repeat(64) });
    rs.request(receipt(2, other));
    expect(sent).toHaveLength(1);
  });

  it("offers up to 100 unsigned receipts, oldest first, when the node's session opens", async () => {
    const list = Array.from({ length: 130 }, (_, i) => receipt(i + 1));
    const { rs, store, sent } = setup([...list].reverse());
    expect(await rs.onSessionOpen(node.publicKeyHex)).toBe(UNSIGNED_OFFERED_PER_SESSION);
    expect(store.limits).toEqual([100]);
    expect(sent.map((s) => (s.message as { receipt: { receipt_id: string } }).receipt.receipt_id)).toEqual(list.slice(0, 100).map((r) => r.receipt_id));
    expect(await rs.onSessionOpen(other.publicKeyHex)).toBe(0);
  });

  it("does not offer again what the node refused, so refusals cannot crowd out newer receipts", async () => {
    const list = Array.from({ length: 101 }, (_, i) => receipt(i + 1));
    const { rs, sent } = setup(list);
    await rs.onSessionOpen(node.publicKeyHex);
    const firstOffer = sent.splice(0).map((s) => (s.message as { receipt: { receipt_id: string } }).receipt.receipt_id);
    expect(firstOffer).toHaveLength(100);
    for (const id of firstOffer.slice(0, 3)) await rs.onMessage(node.publicKeyHex, { type: "receipt.refused", receipt_id: id, reason: "job_not_served: test" });
    await rs.onSessionOpen(node.publicKeyHex);
    const again = sent.map((s) => (s.message as { receipt: { receipt_id: string } }).receipt.receipt_id);
    expect(again).toHaveLength(98);
    expect(again).not.toContain(firstOffer[0]);
    expect(again.at(-1)).toBe(list[100]!.receipt_id);
  });

  it("stores a valid node signature once, after which the receipt verifies with both", async () => {
    const r = receipt(1);
    const { rs, store, outcomes } = setup([r]);
    const signature = sign(r);
    expect(await rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature })).toBe("signed");
    expect(store.rows.get(r.receipt_id)!.node_signature).toBe(signature);
    const { holdUntil: _h, statusChangedAt: _s, payoutBatchId: _p, ...stored } = store.rows.get(r.receipt_id)!;
    expect(verifyReceipt(stored).valid).toBe(true);
    // The same answer again, or a second valid signature: the first is kept, counted once.
    expect(await rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature })).toBe("signed");
    expect(await rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature: sign(r) })).toBe("signed");
    expect(store.rows.get(r.receipt_id)!.node_signature).toBe(signature);
    expect(outcomes).toEqual(["signed"]);
  });

  it.each<[string, (r: ReceiptRecord) => { from: string; signature: string; id?: string }]>([
    ["a signature over other bytes", (r) => ({ from: node.publicKeyHex, signature: sign({ ...r, amount: 999 }) })],
    ["a signature in the platform domain", (r) => ({ from: node.publicKeyHex, signature: node.sign(receiptDigest(r, "platform")) })],
    ["another node signing this node's receipt", (r) => ({ from: other.publicKeyHex, signature: signReceipt(other, { ...r, node_id: other.publicKeyHex }, "node") })],
    ["an unknown receipt", () => ({ from: node.publicKeyHex, signature: "11".repeat(64), id: "6f1c1a52-3b8e-4c1e-9a55-999999999999" })],
    ["junk hex", () => ({ from: node.publicKeyHex, signature: "ff".repeat(64) })],
  ])("refuses %s: never stored, counted invalid", async (_name, make) => {
    const r = receipt(1);
    const { rs, store, outcomes } = setup([r]);
    const { from, signature, id } = make(r);
    expect(await rs.onMessage(from, { type: "receipt.signed", receipt_id: id ?? r.receipt_id, signature })).toBe("invalid");
    expect(store.rows.get(r.receipt_id)!.node_signature).toBeNull();
    expect(outcomes).toEqual(["invalid"]);
  });

  it("counts a refusal and leaves the receipt unsigned", async () => {
    const r = receipt(1);
    const { rs, store, outcomes } = setup([r]);
    expect(await rs.onMessage(node.publicKeyHex, { type: "receipt.refused", receipt_id: r.receipt_id, reason: "output_tokens_mismatch: …" })).toBe("refused");
    expect(store.rows.get(r.receipt_id)!.node_signature).toBeNull();
    expect(outcomes).toEqual(["refused"]);
  });

  it("a failing store is logged, never thrown", async () => {
    const r = receipt(1);
    const broken = new ReceiptSignatures({
      registry: { get: () => undefined },
      messenger: { send: () => false },
      store: { getReceipts: async () => Promise.reject(new Error("disk")), setReceiptNodeSignatures: async () => [], listUnsignedReceipts: async () => Promise.reject(new Error("disk")) },
      logger: createLogger("silent"),
      verifier: wasmSchnorrVerifier,
      afterIo: new AfterIoQueue(),
      flushMs: 0,
    });
    expect(await broken.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature: sign(r) })).toBe("invalid");
    expect(await broken.onSessionOpen(node.publicKeyHex)).toBe(0);
  });

  it("stores the committed test vector's node signature, and refuses it for any other receipt", async () => {
    const v = vectors.receipt;
    const b = v.body as ReceiptBody;
    const record: ReceiptRecord = { ...b, status: "held", platform_signature: v.platform_signature, node_signature: null, holdUntil: new Date(0), statusChangedAt: new Date(0), payoutBatchId: null };
    const other: ReceiptRecord = { ...record, receipt_id: "0b6f1c52-3b8e-4c1e-9a55-0d4f0f6f2b11" };
    const { rs, store } = setup([record, other], [b.node_id]);
    expect(await rs.onMessage(b.node_id, { type: "receipt.signed", receipt_id: other.receipt_id, signature: v.node_signature })).toBe("invalid");
    expect(await rs.onMessage(b.node_id, { type: "receipt.signed", receipt_id: b.receipt_id, signature: v.node_signature })).toBe("signed");
    expect(store.rows.get(b.receipt_id)!.node_signature).toBe(v.node_signature);
  });

  it("gathers the signatures that arrive together and stores them with one read and one write, each its own outcome", async () => {
    const list = Array.from({ length: 5 }, (_, i) => receipt(i + 1));
    const { rs, store, outcomes } = setup(list, [node.publicKeyHex], 50);
    const first = sign(list[0]!);
    const answers = await Promise.all([
      ...list.map((r, i) => rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature: i === 0 ? first : sign(r) })),
      // A second valid answer to the first receipt in the same batch, and a forged one for the second.
      rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: list[0]!.receipt_id, signature: sign(list[0]!) }),
      rs.onMessage(other.publicKeyHex, { type: "receipt.signed", receipt_id: list[1]!.receipt_id, signature: other.sign(receiptDigest(list[1]!, "node")) }),
    ]);
    expect(answers).toEqual(["signed", "signed", "signed", "signed", "signed", "signed", "invalid"]);
    expect(store.calls).toEqual({ getReceipts: 1, setReceiptNodeSignatures: 1 });
    expect(store.rows.get(list[0]!.receipt_id)!.node_signature).toBe(first);
    expect(list.every((r) => store.rows.get(r.receipt_id)!.node_signature !== null)).toBe(true);
    expect(outcomes.filter((o) => o === "signed")).toHaveLength(5);
    expect(outcomes.filter((o) => o === "invalid")).toHaveLength(1);
  });

  it("waits for the flush interval, and flush() stores what is gathered at once (shutdown)", async () => {
    const r = receipt(1);
    const { rs, store } = setup([r], [node.publicKeyHex], 60_000);
    let outcome: ReceiptSignatureOutcome | undefined;
    void rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature: sign(r) }).then((o) => (outcome = o));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(store.calls.getReceipts).toBe(0);
    await rs.flush();
    expect(outcome).toBe("signed");
    expect(store.rows.get(r.receipt_id)!.node_signature).not.toBeNull();
    await rs.flush(); // nothing gathered: no statement
    expect(store.calls).toEqual({ getReceipts: 1, setReceiptNodeSignatures: 1 });
  });

  it("stores a full batch at once, without waiting for the flush interval", async () => {
    const list = Array.from({ length: MAX_GATHERED_SIGNATURES }, (_, i) => receipt(i + 1));
    const { rs, store } = setup(list, [node.publicKeyHex], 60_000);
    const answers = await Promise.all(list.map((r) => rs.onMessage(node.publicKeyHex, { type: "receipt.signed", receipt_id: r.receipt_id, signature: sign(r) })));
    expect(answers.every((a) => a === "signed")).toBe(true);
    expect(store.calls).toEqual({ getReceipts: 1, setReceiptNodeSignatures: 1 });
  });
});
