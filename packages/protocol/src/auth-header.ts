import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, isHex, sha256Hex, utf8ToBytes } from "./hex.js";
import type { Signer } from "./signer.js";
import { type SignatureVerifier, referenceVerifier } from "./signer.js";

/**
 * Node request authentication.
 *
 *   X-Tessera-Auth: v1.<signature>.<nonce>.<timestamp>
 *   X-Tessera-Key:  <node public key, 64 hex>
 *
 * signature = BIP-340 Schnorr (hex) over
 *   SHA256(method + "\n" + path + "\n" + sha256hex(body or "") + "\n" + nonce + "\n" + timestamp)
 * nonce = 16 random bytes as hex; timestamp = Unix seconds. `path` includes the query string exactly as sent.
 */
export const AUTH_HEADER = "x-tessera-auth";
export const KEY_HEADER = "x-tessera-key";
export const MAX_CLOCK_SKEW_SECONDS = 30;
export const NONCE_TTL_SECONDS = 300;

export interface AuthRequest {
  method: string;
  path: string;
  body?: string | Uint8Array;
}

export interface UnsignedAuth extends AuthRequest {
  nonce: string;
  timestamp: number;
}

export function canonicalAuthString(req: UnsignedAuth): string {
  const bodyHash = sha256Hex(req.body ?? "");
  return `${req.method.toUpperCase()}\n${req.path}\n${bodyHash}\n${req.nonce}\n${req.timestamp}`;
}

export function authDigest(req: UnsignedAuth): Uint8Array {
  return sha256(utf8ToBytes(canonicalAuthString(req)));
}

export interface SignOptions {
  nowSeconds?: number;
  nonce?: string;
  randomBytes?: (n: number) => Uint8Array;
}

/** Returns the headers a node attaches to a signed request. */
export function signRequest(signer: Signer, req: AuthRequest, options: SignOptions = {}): Record<string, string> {
  const nonce = options.nonce ?? bytesToHex((options.randomBytes ?? randomBytes)(16));
  const timestamp = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const signature = signer.sign(authDigest({ ...req, nonce, timestamp }));
  return { [AUTH_HEADER]: `v1.${signature}.${nonce}.${timestamp}`, [KEY_HEADER]: signer.publicKeyHex };
}

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

export interface ParsedAuthHeader {
  signature: string;
  nonce: string;
  timestamp: number;
}

export function parseAuthHeader(header: string | undefined): ParsedAuthHeader | undefined {
  if (!header) return undefined;
  const parts = header.split(".");
  if (parts.length !== 4 || parts[0] !== "v1") return undefined;
  const [, signature, nonce, ts] = parts as [string, string, string, string];
  if (!isHex(signature, 64) || !isHex(nonce, 16) || !/^\d{1,12}$/.test(ts)) return undefined;
  return { signature, nonce, timestamp: Number(ts) };
}

/** Remembers nonces for NONCE_TTL_SECONDS so a captured request cannot be replayed. */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly ttlSeconds = NONCE_TTL_SECONDS) {}

  /** Records the nonce; false when it was already seen within the TTL. */
  claim(key: string, nowSeconds: number): boolean {
    this.sweep(nowSeconds);
    const expiry = this.seen.get(key);
    if (expiry !== undefined && expiry > nowSeconds) return false;
    this.seen.set(key, nowSeconds + this.ttlSeconds);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(nowSeconds: number): void {
    if (nowSeconds - this.lastSweep < 10) return;
    this.lastSweep = nowSeconds;
    for (const [key, expiry] of this.seen) if (expiry <= nowSeconds) this.seen.delete(key);
  }
}

export type AuthFailure =
  | "missing_header"
  | "malformed_header"
  | "bad_key"
  | "stale_timestamp"
  | "bad_signature"
  | "replayed_nonce";

export type AuthResult = { ok: true; publicKeyHex: string } | { ok: false; reason: AuthFailure };

export interface VerifyInput extends AuthRequest {
  authHeader: string | undefined;
  keyHeader: string | undefined;
  nowSeconds: number;
  /** When given, the nonce is claimed only after the signature checks out. */
  nonces?: NonceCache;
  /** A faster BIP-340 implementation for servers (it must give the same answers); the reference otherwise. */
  verifier?: SignatureVerifier;
}

/** Never throws. The nonce is consumed only by a request whose signature is valid. */
export function verifyRequest(input: VerifyInput): AuthResult {
  if (!input.authHeader) return { ok: false, reason: "missing_header" };
  const parsed = parseAuthHeader(input.authHeader);
  if (!parsed) return { ok: false, reason: "malformed_header" };
  const key = input.keyHeader?.toLowerCase();
  if (!key || !isHex(key, 32)) return { ok: false, reason: "bad_key" };
  if (Math.abs(input.nowSeconds - parsed.timestamp) > MAX_CLOCK_SKEW_SECONDS) {
    return { ok: false, reason: "stale_timestamp" };
  }
  const digest = authDigest({ ...input, nonce: parsed.nonce, timestamp: parsed.timestamp });
  const valid = (input.verifier ?? referenceVerifier).verify(parsed.signature, digest, key);
  if (!valid) return { ok: false, reason: "bad_signature" };
  if (input.nonces && !input.nonces.claim(`${key}:${parsed.nonce}`, input.nowSeconds)) {
    return { ok: false, reason: "replayed_nonce" };
  }
  return { ok: true, publicKeyHex: key };
}
