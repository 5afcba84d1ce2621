import type { FastifyRequest } from "fastify";
import { AUTH_HEADER, KEY_HEADER, type NonceCache, TesseraError, verifyRequest } from "@tessera/protocol";
import type { Clock } from "../clock.js";

const REASONS: Record<string, string> = {
  missing_header: "missing X-Tessera-Auth header (node requests must be signed)",
  malformed_header: "malformed X-Tessera-Auth header (expected v1.<signature>.<nonce>.<timestamp>)",
  bad_key: "missing or malformed X-Tessera-Key header",
  stale_timestamp: "signature timestamp is more than 30 s from the coordinator's clock (check the node's clock)",
  bad_signature: "signature does not match the request",
  replayed_nonce: "nonce was already used (replayed request)",
};

/** What checking node signatures needs: the clock, the replay cache and the signature verifier. */
export interface NodeAuthDeps {
  clock: Clock;
  nonces: NonceCache;
  verifier: { verify(signatureHex: string, digest: Uint8Array, publicKeyHex: string): boolean };
}

/** Verifies a signed node request; returns the signer's public key (the node id) or throws `unauthorized`. */
export function authenticateNode(
  request: { method: string; url: string; headers: FastifyRequest["headers"]; rawBody?: string },
  { clock, nonces, verifier }: NodeAuthDeps,
): string {
  const header = (name: string) => {
    const v = request.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const result = verifyRequest({
    method: request.method,
    path: request.url,
    body: request.rawBody ?? "",
    authHeader: header(AUTH_HEADER),
    keyHeader: header(KEY_HEADER),
    nowSeconds: Math.floor(clock.now() / 1000),
    nonces,
    verifier,
  });
  if (!result.ok) throw new TesseraError("unauthorized", REASONS[result.reason] ?? result.reason);
  return result.publicKeyHex;
}
