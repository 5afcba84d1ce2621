import { z } from "zod";
import { sha256 } from "@noble/hashes/sha2.js";
import { isHex, utf8ToBytes } from "../hex.js";
import { type Signer, verifySchnorr } from "../signer.js";

/**
 * The first link of the key hierarchy operator → node: the operator key vouches for one node key for a while.
 *
 *   { node, operator, issued_at, expires_at, signature }        (keys: 64 hex x-only; times: Unix seconds)
 *
 * signature = BIP-340 Schnorr by the operator key over
 *   SHA256("tessera-delegation/v1\n" + node + "\n" + operator + "\n" + issued_at + "\n" + expires_at)
 *
 * A node presents it when it registers; nodes under one operator key count as one operator (never each other's
 * reference, paid as one). Without one a node is its own operator. Lifetime: at most DELEGATION_MAX_TTL_SECONDS.
 */
export const DELEGATION_DEFAULT_TTL_SECONDS = 365 * 86_400;
export const DELEGATION_MAX_TTL_SECONDS = 2 * 365 * 86_400;
const SKEW_SECONDS = 30;

const Hex32 = z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex characters");
const UnixSeconds = z.number().int().min(0).max(2 ** 40);

export const NodeDelegation = z.strictObject({
  node: Hex32,
  operator: Hex32,
  issued_at: UnixSeconds,
  expires_at: UnixSeconds,
  signature: z.string().regex(/^[0-9a-f]{128}$/, "128 lowercase hex characters"),
});
export type NodeDelegation = z.infer<typeof NodeDelegation>;

export function delegationDigest(node: string, operator: string, issuedAt: number, expiresAt: number): Uint8Array {
  return sha256(utf8ToBytes(`tessera-delegation/v1\n${node}\n${operator}\n${issuedAt}\n${expiresAt}`));
}

/** Throws RangeError for a lifetime outside 1 s … 2 years or a node key that is not 64 hex. */
export function signDelegation(operator: Signer, nodePublicKeyHex: string, options: { nowSeconds: number; ttlSeconds?: number }): NodeDelegation {
  const ttl = options.ttlSeconds ?? DELEGATION_DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > DELEGATION_MAX_TTL_SECONDS) {
    throw new RangeError(`a delegation lasts 1 s to ${DELEGATION_MAX_TTL_SECONDS / 86_400} days`);
  }
  if (!isHex(nodePublicKeyHex, 32)) throw new RangeError("node public key must be 64 lowercase hex characters");
  const issued_at = Math.floor(options.nowSeconds);
  const expires_at = issued_at + ttl;
  const signature = operator.sign(delegationDigest(nodePublicKeyHex, operator.publicKeyHex, issued_at, expires_at));
  return { node: nodePublicKeyHex, operator: operator.publicKeyHex, issued_at, expires_at, signature };
}

export type DelegationFailure = "malformed" | "wrong_node" | "bad_signature" | "not_yet_valid" | "expired" | "too_long_lived";

export const DELEGATION_FAILURES: Record<DelegationFailure, string> = {
  malformed: "the delegation is not a delegation (see docs/trust.md for its fields)",
  wrong_node: "the delegation is for another node key",
  bad_signature: "the delegation's signature does not match its operator key",
  not_yet_valid: "the delegation is issued in the future (check the clock where it was signed)",
  expired: "the delegation has expired: sign a new one (`tessera keys list` shows it; `tessera operator delegate`)",
  too_long_lived: `a delegation may last at most ${DELEGATION_MAX_TTL_SECONDS / 86_400} days`,
};

export type DelegationCheck = { ok: true; delegation: NodeDelegation } | { ok: false; reason: DelegationFailure };

/** Checks shape, node, signature and time. Never throws. */
export function verifyDelegation(value: unknown, nodePublicKeyHex: string, nowSeconds: number): DelegationCheck {
  const parsed = NodeDelegation.safeParse(value);
  if (!parsed.success) return { ok: false, reason: "malformed" };
  const d = parsed.data;
  if (d.node !== nodePublicKeyHex) return { ok: false, reason: "wrong_node" };
  if (!verifySchnorr(d.signature, delegationDigest(d.node, d.operator, d.issued_at, d.expires_at), d.operator)) {
    return { ok: false, reason: "bad_signature" };
  }
  if (d.expires_at <= d.issued_at || d.expires_at - d.issued_at > DELEGATION_MAX_TTL_SECONDS) return { ok: false, reason: "too_long_lived" };
  if (d.issued_at > nowSeconds + SKEW_SECONDS) return { ok: false, reason: "not_yet_valid" };
  if (d.expires_at <= nowSeconds) return { ok: false, reason: "expired" };
  return { ok: true, delegation: d };
}

/**
 * A node key handing over to its successor: the retiring key signs
 *   SHA256("tessera-key-rotation/v1\n" + previous + "\n" + next + "\n" + rotated_at)
 * The successor registers with it; the coordinator carries the node's standing over and accepts the retiring key for
 * KEY_ROTATION_GRACE_SECONDS more, so a daemon still running with it keeps serving until it restarts.
 */
export const KEY_ROTATION_GRACE_SECONDS = 24 * 3600;

export const KeyRotation = z.strictObject({
  previous_key: Hex32,
  rotated_at: UnixSeconds,
  signature: z.string().regex(/^[0-9a-f]{128}$/, "128 lowercase hex characters"),
});
export type KeyRotation = z.infer<typeof KeyRotation>;

export function keyRotationDigest(previous: string, next: string, rotatedAt: number): Uint8Array {
  return sha256(utf8ToBytes(`tessera-key-rotation/v1\n${previous}\n${next}\n${rotatedAt}`));
}

export function signKeyRotation(previous: Signer, nextPublicKeyHex: string, nowSeconds: number): KeyRotation {
  const rotated_at = Math.floor(nowSeconds);
  return { previous_key: previous.publicKeyHex, rotated_at, signature: previous.sign(keyRotationDigest(previous.publicKeyHex, nextPublicKeyHex, rotated_at)) };
}

/** Whether `rotation` is the previous key's signed hand-over to `next`, made no later than now (+ skew). Never throws. */
export function verifyKeyRotation(rotation: KeyRotation, next: string, nowSeconds: number): boolean {
  if (rotation.previous_key === next || rotation.rotated_at > nowSeconds + SKEW_SECONDS) return false;
  return verifySchnorr(rotation.signature, keyRotationDigest(rotation.previous_key, next, rotation.rotated_at), rotation.previous_key);
}
