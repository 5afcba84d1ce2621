import { z } from "zod";
import { sha256 } from "@noble/hashes/sha2.js";
import { canonicalJson } from "../canonical-json.js";
import { utf8ToBytes } from "../hex.js";
import { type Signer, verifySchnorr } from "../signer.js";

/**
 * A receipt (the seed's Compute Payment Receipt): one per node per job, one per segment when the job failed over.
 * It records what was served and what it earned, in hashes and counts, never text, so it outlives the job's content.
 * Money is integer micro-USDC (1e-6 USDC, the token's own base unit).
 *
 * Two signatures over the same canonical bytes (RFC 8785 JSON of the body, every field below except `status` and the
 * signatures), each behind its own domain tag so neither can be replayed as the other:
 *   platform_signature = BIP-340 by `platform_key` over SHA256("tessera-receipt-v1/platform\n" ‖ JCS(body))
 *   node_signature     = BIP-340 by `node_id`      over SHA256("tessera-receipt-v1/node\n" ‖ JCS(body))
 * The coordinator signs when it issues the receipt; the node signs when it has checked the receipt against what it
 * served (a node that is offline signs when it is back; until then `node_signature` is null).
 */
export const RECEIPT_VERSION = "tessera-receipt-v1";
export const RECEIPT_STATUSES = ["held", "available", "paid", "forfeited"] as const;
export type ReceiptStatus = (typeof RECEIPT_STATUSES)[number];

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const hex128 = z.string().regex(/^[0-9a-f]{128}$/);
const micro = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const tokens = z.number().int().min(0).max(2 ** 31 - 1);

export const ReceiptBody = z.object({
  v: z.literal(RECEIPT_VERSION),
  receipt_id: z.string().uuid(),
  job_id: z.string().min(1).max(64),
  /** 1 for the node that started the job, 2… for each node that continued it after a failover. */
  segment: z.number().int().min(1).max(1000),
  node_id: hex64,
  operator_id: hex64,
  /** The paying client: `key:<api key id>`, or `open` for a request without a key. */
  client_key_id: z.string().min(1).max(128),
  model: z.string().min(1).max(512),
  /** SHA-256 of the model file the node served, or null where it has no file (an HTTP backend). */
  model_sha256: hex64.nullable(),
  input_tokens: tokens,
  output_tokens: tokens,
  /** The price the client paid, micro-USDC per 1,000 tokens. */
  price: z.object({ input_per_1k: micro, output_per_1k: micro }).strict(),
  /** What the client was charged for this segment. */
  amount: micro,
  /** The platform's share of `amount`. */
  fee: micro,
  /** Paid to the operator from the network's reward pool, on top of `amount - fee`. */
  reward: micro,
  /** SHA-256 (hex) of the whole answer the client received. */
  output_sha256: hex64,
  /** The node's signed result commitment for this segment (result-commitment.ts), when it sent a valid one. */
  result_commitment: hex64.nullable(),
  /** ISO 8601, UTC. */
  completed_at: z.string().datetime(),
  platform_key: hex64,
}).strict();
export type ReceiptBody = z.infer<typeof ReceiptBody>;

export const Receipt = ReceiptBody.extend({
  status: z.enum(RECEIPT_STATUSES),
  platform_signature: hex128,
  node_signature: hex128.nullable(),
}).strict();
export type Receipt = z.infer<typeof Receipt>;

export type ReceiptSigner = "platform" | "node";

/** The digest `who` signs: SHA-256 of the domain tag and the body's canonical JSON. */
export function receiptDigest(body: ReceiptBody, who: ReceiptSigner): Uint8Array {
  return sha256(utf8ToBytes(`${RECEIPT_VERSION}/${who}\n${canonicalJson(receiptBodyOf(body))}`));
}

/** The signed fields of a receipt (drops status and signatures, whatever else it carries). */
export function receiptBodyOf(receipt: ReceiptBody): ReceiptBody {
  const { v, receipt_id, job_id, segment, node_id, operator_id, client_key_id, model, model_sha256, input_tokens, output_tokens, price, amount, fee, reward, output_sha256, result_commitment, completed_at, platform_key } = receipt;
  return { v, receipt_id, job_id, segment, node_id, operator_id, client_key_id, model, model_sha256, input_tokens, output_tokens, price: { input_per_1k: price.input_per_1k, output_per_1k: price.output_per_1k }, amount, fee, reward, output_sha256, result_commitment, completed_at, platform_key };
}

export function signReceipt(signer: Signer, body: ReceiptBody, who: ReceiptSigner): string {
  const expected = who === "platform" ? body.platform_key : body.node_id;
  if (signer.publicKeyHex !== expected) throw new RangeError(`the ${who} signature must be made by ${expected}`);
  return signer.sign(receiptDigest(body, who));
}

export interface ReceiptVerification {
  /** The body parsed and both present signatures hold. */
  valid: boolean;
  platform: "valid" | "invalid";
  node: "valid" | "invalid" | "missing";
  /** Why it is not valid, in words. */
  problems: string[];
}

/**
 * Checks a receipt offline: its shape, the platform signature, and the node signature when present. With
 * `platformKey`, the receipt must also name that key (otherwise anyone could make a key and sign receipts with it).
 * `valid` requires both signatures unless `allowUnsignedByNode`. Never throws.
 */
export function verifyReceipt(input: unknown, options: { platformKey?: string; allowUnsignedByNode?: boolean } = {}): ReceiptVerification {
  const parsed = Receipt.safeParse(input);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { valid: false, platform: "invalid", node: "invalid", problems: [`not a receipt: ${first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "malformed"}`] };
  }
  const r = parsed.data;
  const problems: string[] = [];
  const platform = verifySchnorr(r.platform_signature, receiptDigest(r, "platform"), r.platform_key) ? "valid" : "invalid";
  if (platform === "invalid") problems.push("the platform signature does not match the receipt");
  if (options.platformKey !== undefined && options.platformKey.toLowerCase() !== r.platform_key) problems.push(`signed by platform key ${r.platform_key}, not the expected ${options.platformKey.toLowerCase()}`);
  const node = r.node_signature === null ? "missing" : verifySchnorr(r.node_signature, receiptDigest(r, "node"), r.node_id) ? "valid" : "invalid";
  if (node === "invalid") problems.push("the node signature does not match the receipt");
  if (node === "missing" && !options.allowUnsignedByNode) problems.push("the node has not signed the receipt yet");
  if (r.fee > r.amount) problems.push("the fee is larger than the amount");
  return { valid: problems.length === 0, platform, node, problems };
}

/** Coordinator → node: check this receipt against what you served and sign it. */
export const ReceiptSign = z.object({ type: z.literal("receipt.sign"), receipt: ReceiptBody });
export type ReceiptSign = z.infer<typeof ReceiptSign>;
/** Node → coordinator: the node's signature over the receipt body. */
export const ReceiptSigned = z.object({ type: z.literal("receipt.signed"), receipt_id: z.string().uuid(), signature: hex128 });
export type ReceiptSigned = z.infer<typeof ReceiptSigned>;
/** Node → coordinator: the node will not sign it (it does not match what the node served), and why. */
export const ReceiptRefused = z.object({ type: z.literal("receipt.refused"), receipt_id: z.string().uuid(), reason: z.string().max(1024) });
export type ReceiptRefused = z.infer<typeof ReceiptRefused>;
