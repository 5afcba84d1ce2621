import { describe, expect, it } from "vitest";
import { generateKeyPair, secretKeySigner, verifySchnorr } from "@tessera/protocol";
import { sha256 } from "@noble/hashes/sha2.js";
import { wasmSchnorrSigner } from "./wasm-schnorr-signer.js";

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
