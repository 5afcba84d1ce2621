import { describe, expect, it } from "vitest";
import { sha256 } from "@noble/hashes/sha2.js";
import { authDigest } from "./auth-header.js";
import { bytesToHex } from "./hex.js";
import { generateKeyPair } from "./keys.js";
import { secretKeySigner, verifySchnorr } from "./signer.js";
import { wasmSchnorrSigner, wasmSchnorrVerifier } from "./wasm-schnorr.js";

describe("wasmSchnorrVerifier", () => {
  it("gives the same answer as the protocol's reference verification, valid and invalid alike", () => {
    const keys = Array.from({ length: 6 }, () => generateKeyPair());
    const cases: Array<[string, Uint8Array, string]> = [];
    for (let i = 0; i < 30; i++) {
      const k = keys[i % keys.length]!;
      const other = keys[(i + 1) % keys.length]!;
      const digest = authDigest({ method: "POST", path: `/p/${i}`, body: String(i), nonce: "ab".repeat(16), timestamp: i });
      const sig = secretKeySigner(k.secretKeyHex).sign(digest);
      const flipped = sig.slice(0, 10) + (sig[10] === "0" ? "1" : "0") + sig.slice(11);
      cases.push([sig, digest, k.publicKeyHex], [flipped, digest, k.publicKeyHex], [sig, digest, other.publicKeyHex]);
      cases.push([sig, authDigest({ method: "GET", path: "/", nonce: "cd".repeat(16), timestamp: 1 }), k.publicKeyHex]);
    }
    const [sig, digest, key] = cases[0]!;
    cases.push(
      ["ff".repeat(32) + sig.slice(64), digest, key], // r ≥ p
      [sig.slice(0, 64) + "ff".repeat(32), digest, key], // s ≥ n
      ["zz" + sig.slice(2), digest, key], // not hex
      [sig.slice(0, 100), digest, key], // short
      [sig, digest, "00".repeat(32)], // x = 0 is not on the curve
      [sig, digest, bytesToHex(new Uint8Array(32).fill(0xff))], // x ≥ p
      [sig, digest.subarray(0, 31), key], // short digest
    );
    let valid = 0;
    for (const [s, d, k] of cases) {
      const expected = verifySchnorr(s, d, k);
      expect(wasmSchnorrVerifier.verify(s, d, k), `${s.slice(0, 8)} ${k.slice(0, 8)}`).toBe(expected);
      if (expected) valid++;
    }
    expect(valid).toBe(30);
  });
});

describe("wasmSchnorrSigner", () => {
  it("has the reference signer's public key, and its signatures verify under the reference verifier", () => {
    for (let i = 0; i < 20; i++) {
      const { secretKeyHex } = generateKeyPair();
      const wasm = wasmSchnorrSigner(secretKeyHex);
      expect(wasm.publicKeyHex).toBe(secretKeySigner(secretKeyHex).publicKeyHex);
      const digest = sha256(new Uint8Array([i, 1, 2]));
      const signature = wasm.sign(digest);
      expect(verifySchnorr(signature, digest, wasm.publicKeyHex)).toBe(true);
      expect(verifySchnorr(signature, sha256(new Uint8Array([i, 1, 3])), wasm.publicKeyHex)).toBe(false);
    }
  });
});
