import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  NonceCache,
  canonicalAuthString,
  encodeNpub,
  encodeNsec,
  parsePublicKey,
  parseSecretKey,
  publicKeyFromSecret,
  secretKeySigner,
  signRequest,
  verifyRequest,
} from "../src/index.js";
import vectors from "../test-vectors.json" with { type: "json" };

const signer = secretKeySigner(vectors.secret_key_hex, () => new Uint8Array(32));

describe("auth header test vectors", () => {
  it("derives the committed public key and NIP-19 encodings", () => {
    expect(publicKeyFromSecret(vectors.secret_key_hex)).toBe(vectors.public_key_hex);
    expect(encodeNpub(vectors.public_key_hex)).toBe(vectors.npub);
    expect(encodeNsec(vectors.secret_key_hex)).toBe(vectors.nsec);
    expect(parsePublicKey(vectors.npub)).toBe(vectors.public_key_hex);
    expect(parseSecretKey(vectors.nsec)).toBe(vectors.secret_key_hex);
    expect(parsePublicKey(vectors.nsec)).toBeUndefined();
    expect(parsePublicKey("npub1garbage")).toBeUndefined();
  });

  for (const v of vectors.auth) {
    it(`signs and verifies ${v.method} ${v.path}`, () => {
      const bodyHash = createHash("sha256").update(v.body, "utf8").digest("hex");
      expect(canonicalAuthString(v)).toBe(`${v.method}\n${v.path}\n${bodyHash}\n${v.nonce}\n${v.timestamp}`);
      expect(canonicalAuthString(v)).toBe(v.canonical);
      const headers = signRequest(signer, v, { nowSeconds: v.timestamp, nonce: v.nonce });
      expect(headers["x-tessera-auth"]).toBe(v.header);
      expect(headers["x-tessera-key"]).toBe(vectors.public_key_hex);
      const result = verifyRequest({ ...v, authHeader: v.header, keyHeader: vectors.public_key_hex, nowSeconds: v.timestamp });
      expect(result).toEqual({ ok: true, publicKeyHex: vectors.public_key_hex });
    });
  }
});

describe("verifyRequest rejects", () => {
  const v = vectors.auth[0]!;
  const base = { ...v, authHeader: v.header, keyHeader: vectors.public_key_hex, nowSeconds: v.timestamp };
  const cases: Array<[string, Partial<typeof base>, string]> = [
    ["no header", { authHeader: undefined }, "missing_header"],
    ["a malformed header", { authHeader: "v2.abc" }, "malformed_header"],
    ["a missing key", { keyHeader: undefined }, "bad_key"],
    ["a timestamp 31 s old", { nowSeconds: v.timestamp + 31 }, "stale_timestamp"],
    ["a timestamp 31 s ahead", { nowSeconds: v.timestamp - 31 }, "stale_timestamp"],
    ["a tampered body", { body: v.body + " " }, "bad_signature"],
    ["a swapped method", { method: "PUT" }, "bad_signature"],
    ["a swapped path", { path: "/api/v1/nodes/heartbeat" }, "bad_signature"],
    ["another key", { keyHeader: publicKeyFromSecret("02".repeat(32)) }, "bad_signature"],
  ];
  for (const [name, change, reason] of cases) {
    it(name, () => expect(verifyRequest({ ...base, ...change })).toEqual({ ok: false, reason }));
  }

  it("accepts exactly 30 s of skew", () => {
    expect(verifyRequest({ ...base, nowSeconds: v.timestamp + 30 }).ok).toBe(true);
  });

  it("a replayed nonce within 5 minutes, but not a forged request spending someone's nonce", () => {
    const nonces = new NonceCache();
    expect(verifyRequest({ ...base, body: "forged", nonces })).toEqual({ ok: false, reason: "bad_signature" });
    expect(verifyRequest({ ...base, nonces }).ok).toBe(true);
    expect(verifyRequest({ ...base, nonces })).toEqual({ ok: false, reason: "replayed_nonce" });
  });

  it("forgets nonces after their 5-minute window", () => {
    const nonces = new NonceCache();
    expect(nonces.claim("k:n", 1000)).toBe(true);
    expect(nonces.claim("k:n", 1299)).toBe(false);
    expect(nonces.claim("k:n", 1300)).toBe(true);
  });
});
