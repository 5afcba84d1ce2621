import { describe, expect, it } from "vitest";
import { schnorr } from "@noble/curves/secp256k1.js";
import { generateKeyPair, secretKeySigner } from "../index.js";
import { bytesToHex } from "../hex.js";
import { canonicalJson } from "../canonical-json.js";
import vectors from "../../test-vectors.json" with { type: "json" };
import { type Receipt, type ReceiptBody, RECEIPT_VERSION, receiptBodyOf, receiptDigest, signReceipt, verifyReceipt } from "./receipt.js";

const platform = secretKeySigner(generateKeyPair().secretKeyHex);
const node = secretKeySigner(generateKeyPair().secretKeyHex);

const body: ReceiptBody = {
  v: RECEIPT_VERSION,
  receipt_id: "6f1c1a52-3b8e-4c1e-9a55-0d4f0f6f2b10",
  job_id: "job-1",
  segment: 1,
  node_id: node.publicKeyHex,
  operator_id: "aa".repeat(32),
  client_key_id: "key:k1",
  model: "tiny",
  model_sha256: "ab".repeat(32),
  input_tokens: 12,
  output_tokens: 40,
  price: { input_per_1k: 100, output_per_1k: 400 },
  amount: 18,
  fee: 2,
  reward: 0,
  output_sha256: "cd".repeat(32),
  result_commitment: "ef".repeat(32),
  completed_at: "2026-12-01T10:00:00.000Z",
  platform_key: platform.publicKeyHex,
};

function signed(b: ReceiptBody = body, withNode = true): Receipt {
  return { ...b, status: "held", platform_signature: signReceipt(platform, b, "platform"), node_signature: withNode ? signReceipt(node, b, "node") : null };
}

describe("receipts", () => {
  it("round-trip: signed by both, verified by both, with or without the expected platform key", () => {
    const r = signed();
    expect(verifyReceipt(r)).toEqual({ valid: true, platform: "valid", node: "valid", problems: [] });
    expect(verifyReceipt(r, { platformKey: platform.publicKeyHex.toUpperCase() }).valid).toBe(true);
    // Through JSON, as a client gets it.
    expect(verifyReceipt(JSON.parse(JSON.stringify(r))).valid).toBe(true);
  });

  it("status is not signed: a receipt stays valid as its money moves", () => {
    expect(verifyReceipt({ ...signed(), status: "paid" }).valid).toBe(true);
  });

  it("the digest does not depend on key order or on extra fields carried beside the body", () => {
    const reordered = Object.fromEntries(Object.entries(body).reverse()) as ReceiptBody;
    expect(bytesToHex(receiptDigest(reordered, "node"))).toBe(bytesToHex(receiptDigest(body, "node")));
    expect(bytesToHex(receiptDigest(signed(), "node"))).toBe(bytesToHex(receiptDigest(body, "node")));
    expect(Object.keys(receiptBodyOf(signed()))).not.toContain("status");
  });

  it.each<[string, Partial<Receipt>]>([
    ["a tampered amount", { amount: 19 }],
    ["a tampered fee", { fee: 1 }],
    ["a tampered output token count", { output_tokens: 41 }],
    ["another node", { node_id: "bb".repeat(32) }],
    ["another job", { job_id: "job-2" }],
    ["a price changed", { price: { input_per_1k: 100, output_per_1k: 401 } }],
  ])("%s fails verification", (_name, change) => {
    const result = verifyReceipt({ ...signed(), ...change });
    expect(result.valid).toBe(false);
    expect(result.platform).toBe("invalid");
    expect(result.problems).toContain("the platform signature does not match the receipt");
  });

  it("names the platform key when it is not the expected one", () => {
    const other = generateKeyPair().publicKeyHex;
    const result = verifyReceipt(signed(), { platformKey: other });
    expect(result.valid).toBe(false);
    expect(result.platform).toBe("valid");
    expect(result.problems).toEqual([`signed by platform key ${platform.publicKeyHex}, not the expected ${other}`]);
  });

  it("a receipt the node has not signed is valid only when that is allowed", () => {
    const r = signed(body, false);
    const strict = verifyReceipt(r);
    expect(strict).toMatchObject({ valid: false, platform: "valid", node: "missing" });
    expect(strict.problems).toEqual(["the node has not signed the receipt yet"]);
    expect(verifyReceipt(r, { allowUnsignedByNode: true })).toEqual({ valid: true, platform: "valid", node: "missing", problems: [] });
  });

  it("a signature from one domain does not verify as the other", () => {
    // The node's key signing the platform domain, put where the node signature goes.
    const nodeOverPlatformDomain = node.sign(receiptDigest(body, "platform"));
    const r1 = { ...signed(), node_signature: nodeOverPlatformDomain };
    expect(verifyReceipt(r1)).toMatchObject({ valid: false, platform: "valid", node: "invalid" });
    // A receipt whose platform key is the node key: the node's own signature cannot stand in for the platform's.
    const selfIssued = { ...body, platform_key: node.publicKeyHex };
    const nodeSig = signReceipt(node, selfIssued, "node");
    expect(verifyReceipt({ ...selfIssued, status: "held", platform_signature: nodeSig, node_signature: nodeSig })).toMatchObject({ valid: false, platform: "invalid", node: "valid" });
  });

  it("a signature under another key does not verify", () => {
    const stranger = secretKeySigner(generateKeyPair().secretKeyHex);
    const forged = bytesToHex(schnorr.sign(receiptDigest(body, "node"), schnorr.utils.randomSecretKey()));
    expect(verifyReceipt({ ...signed(), node_signature: forged }).node).toBe("invalid");
    expect(verifyReceipt({ ...signed(), node_signature: stranger.sign(receiptDigest(body, "node")) }).node).toBe("invalid");
  });

  it("signReceipt refuses to sign with a key the receipt does not name for that role", () => {
    expect(() => signReceipt(node, body, "platform")).toThrow(RangeError);
    expect(() => signReceipt(platform, body, "node")).toThrow(RangeError);
  });

  it("never throws on junk, and says what is wrong", () => {
    for (const junk of [null, 42, "x", [], {}, { ...signed(), amount: -1 }, { ...signed(), amount: 1.5 }, { ...signed(), extra: 1 }, { ...signed(), platform_signature: "zz" }]) {
      const result = verifyReceipt(junk);
      expect(result.valid).toBe(false);
      expect(result.problems[0]).toMatch(/^not a receipt: /);
    }
    expect(verifyReceipt({ ...signed(), receipt_id: "nope" }).problems[0]).toMatch(/^not a receipt: receipt_id: /);
  });

  it("flags a fee larger than the amount even when the platform signed it", () => {
    const b = { ...body, fee: 50 };
    const result = verifyReceipt(signed(b));
    expect(result).toMatchObject({ valid: false, platform: "valid", node: "valid" });
    expect(result.problems).toEqual(["the fee is larger than the amount"]);
  });

  it("match the committed test vector: canonical bytes, both digests, both deterministic signatures", () => {
    const v = vectors.receipt;
    const b = v.body as ReceiptBody;
    const zero = () => new Uint8Array(32);
    const p = secretKeySigner(v.platform_secret_key_hex, zero);
    const n = secretKeySigner(v.node_secret_key_hex, zero);
    expect(p.publicKeyHex).toBe(b.platform_key);
    expect(n.publicKeyHex).toBe(b.node_id);
    expect(canonicalJson(b)).toBe(v.canonical);
    expect(bytesToHex(receiptDigest(b, "platform"))).toBe(v.platform_digest);
    expect(bytesToHex(receiptDigest(b, "node"))).toBe(v.node_digest);
    expect(signReceipt(p, b, "platform")).toBe(v.platform_signature);
    expect(signReceipt(n, b, "node")).toBe(v.node_signature);
    const r = { ...b, status: "available", platform_signature: v.platform_signature, node_signature: v.node_signature };
    expect(verifyReceipt(r, { platformKey: b.platform_key })).toEqual({ valid: true, platform: "valid", node: "valid", problems: [] });
  });
});
