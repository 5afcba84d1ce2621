import { sha256 } from "@noble/hashes/sha2.js";
import { isHex, utf8ToBytes } from "../hex.js";
import { type Signer, verifySchnorr } from "../signer.js";

/**
 * Operator tokens: a short-lived bearer token that lets an operator manage one node (queue and read its commands)
 * from anywhere, without copying the node's secret key. Until the operator key hierarchy exists the node key signs
 * it (`tessera node operator-token`); the coordinator keeps nothing and verifies the signature.
 *
 *   tsop1.<node public key, 64 hex>.<issued_at>.<expires_at>.<signature, 128 hex>
 *
 * signature = BIP-340 Schnorr by the node key over
 *   SHA256("tessera-operator-token/v1\n" + node_id + "\n" + issued_at + "\n" + expires_at)   (Unix seconds)
 *
 * Sent as `Authorization: Bearer tsop1.…`. Valid when the signature checks, `issued_at` is not in the future
 * (beyond the usual 30 s skew), `expires_at` is in the future, and the lifetime is at most 24 h.
 */
export const OPERATOR_TOKEN_PREFIX = "tsop1";
export const OPERATOR_TOKEN_MAX_TTL_SECONDS = 24 * 3600;
export const OPERATOR_TOKEN_DEFAULT_TTL_SECONDS = 3600;
const SKEW_SECONDS = 30;

export function operatorTokenDigest(nodeId: string, issuedAt: number, expiresAt: number): Uint8Array {
  return sha256(utf8ToBytes(`tessera-operator-token/v1\n${nodeId}\n${issuedAt}\n${expiresAt}`));
}

export interface CreateOperatorTokenOptions {
  nowSeconds: number;
  ttlSeconds?: number;
}

/** Throws RangeError for a lifetime outside 1 s … 24 h. */
export function createOperatorToken(signer: Signer, options: CreateOperatorTokenOptions): string {
  const ttl = options.ttlSeconds ?? OPERATOR_TOKEN_DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > OPERATOR_TOKEN_MAX_TTL_SECONDS) {
    throw new RangeError(`operator token lifetime must be 1 s to ${OPERATOR_TOKEN_MAX_TTL_SECONDS / 3600} h`);
  }
  const issuedAt = Math.floor(options.nowSeconds);
  const expiresAt = issuedAt + ttl;
  const signature = signer.sign(operatorTokenDigest(signer.publicKeyHex, issuedAt, expiresAt));
  return `${OPERATOR_TOKEN_PREFIX}.${signer.publicKeyHex}.${issuedAt}.${expiresAt}.${signature}`;
}

export function isOperatorToken(text: string): boolean {
  return text.startsWith(`${OPERATOR_TOKEN_PREFIX}.`);
}

export type OperatorTokenResult =
  | { ok: true; nodeId: string; expiresAt: number }
  | { ok: false; reason: "malformed" | "bad_signature" | "expired" | "not_yet_valid" | "too_long_lived" };

/** Never throws. */
export function verifyOperatorToken(token: string, nowSeconds: number): OperatorTokenResult {
  const parts = token.split(".");
  if (parts.length !== 5 || parts[0] !== OPERATOR_TOKEN_PREFIX) return { ok: false, reason: "malformed" };
  const [, nodeId, issued, expires, signature] = parts as [string, string, string, string, string];
  if (!isHex(nodeId, 32) || !/^\d{1,12}$/.test(issued) || !/^\d{1,12}$/.test(expires) || !isHex(signature, 64)) {
    return { ok: false, reason: "malformed" };
  }
  const issuedAt = Number(issued);
  const expiresAt = Number(expires);
  if (!verifySchnorr(signature, operatorTokenDigest(nodeId, issuedAt, expiresAt), nodeId)) return { ok: false, reason: "bad_signature" };
  if (expiresAt - issuedAt > OPERATOR_TOKEN_MAX_TTL_SECONDS || expiresAt <= issuedAt) return { ok: false, reason: "too_long_lived" };
  if (issuedAt > nowSeconds + SKEW_SECONDS) return { ok: false, reason: "not_yet_valid" };
  if (expiresAt <= nowSeconds) return { ok: false, reason: "expired" };
  return { ok: true, nodeId, expiresAt };
}
