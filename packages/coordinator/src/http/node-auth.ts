import type { FastifyRequest } from "fastify";
import { AUTH_HEADER, type AuthFailure, KEY_HEADER, MAX_CLOCK_SKEW_SECONDS, type NonceCache, isHex, parseAuthHeader, verifyRequest } from "@tessera/protocol";
import type { Clock } from "../clock.js";

export const NODE_AUTH_REASONS: Record<AuthFailure, string> = {
  missing_header: "missing X-Tessera-Auth header (node requests must be signed)",
  malformed_header: "malformed X-Tessera-Auth header (expected v1.<signature>.<nonce>.<timestamp>)",
  bad_key: "missing or malformed X-Tessera-Key header",
  stale_timestamp: "signature timestamp is more than 30 s from the coordinator's clock (check the node's clock)",
  bad_signature: "signature does not match the request",
  replayed_nonce: "nonce was already used (replayed request)",
};

/**
 * The nonces every replica sharing the database has seen (replicas/shared-nonces.ts): `false` when the node key's
 * nonce was already used on any of them.
 */
export interface SharedNonceCheck {
  claim(nodeKey: string, nonce: string, timestampSeconds: number): Promise<boolean>;
}

/**
 * What checking node signatures needs: the clock, the replay cache and the signature verifier. The in-process cache is
 * the first filter (a replay to the same replica never reaches the database); `shared`, on PostgreSQL, refuses a
 * nonce used on any replica. Without it (SQLite: one process) the in-process cache is the whole check.
 */
export interface NodeAuthDeps {
  clock: Clock;
  nonces: NonceCache;
  verifier: { verify(signatureHex: string, digest: Uint8Array, publicKeyHex: string): boolean };
  shared?: SharedNonceCheck;
}

/** A signature that checked out, with the nonce it used (for the shared check). */
export interface VerifiedNodeRequest {
  ok: true;
  nodeId: string;
  nonce: string;
  timestamp: number;
}

type Headers = FastifyRequest["headers"];

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * What can be checked of a signed node request from its headers alone, before any of its body is read: the header's
 * shape, the key, the timestamp's freshness and the nonce's format. Returns the failure, or undefined when the
 * signature over the body is worth checking.
 */
export function checkNodeAuthHeaders(headers: Headers, nowSeconds: number): AuthFailure | undefined {
  const auth = header(headers, AUTH_HEADER);
  if (!auth) return "missing_header";
  const parsed = parseAuthHeader(auth);
  if (!parsed) return "malformed_header";
  const key = header(headers, KEY_HEADER)?.toLowerCase();
  if (!key || !isHex(key, 32)) return "bad_key";
  if (Math.abs(nowSeconds - parsed.timestamp) > MAX_CLOCK_SKEW_SECONDS) return "stale_timestamp";
  return undefined;
}

/** Verifies a signed node request over its raw body; returns the signer's public key (the node id) or the failure. */
export function verifyNodeRequest(
  request: { method: string; url: string; headers: Headers; rawBody?: string },
  { clock, nonces, verifier }: NodeAuthDeps,
): VerifiedNodeRequest | { ok: false; reason: AuthFailure } {
  const authHeader = header(request.headers, AUTH_HEADER);
  const result = verifyRequest({
    method: request.method,
    path: request.url,
    body: request.rawBody ?? "",
    authHeader,
    keyHeader: header(request.headers, KEY_HEADER),
    nowSeconds: Math.floor(clock.now() / 1000),
    nonces,
    verifier,
  });
  if (!result.ok) return { ok: false, reason: result.reason };
  // verifyRequest parsed the same header successfully, so this cannot be null.
  const parsed = parseAuthHeader(authHeader!)!;
  return { ok: true, nodeId: result.publicKeyHex, nonce: parsed.nonce, timestamp: parsed.timestamp };
}

/** The shared replay check of a request whose signature checked out: `true` when no replica has seen its nonce. */
export async function claimSharedNonce(verified: VerifiedNodeRequest, deps: Pick<NodeAuthDeps, "shared">): Promise<boolean> {
  return deps.shared === undefined || deps.shared.claim(verified.nodeId, verified.nonce, verified.timestamp);
}

/** `verifyNodeRequest` and then the shared replay check: what a caller that may wait for the database uses. */
export async function verifyNodeRequestEverywhere(
  request: { method: string; url: string; headers: Headers; rawBody?: string },
  deps: NodeAuthDeps,
): Promise<VerifiedNodeRequest | { ok: false; reason: AuthFailure }> {
  const result = verifyNodeRequest(request, deps);
  if (!result.ok) return result;
  return (await claimSharedNonce(result, deps)) ? result : { ok: false, reason: "replayed_nonce" };
}
