import { signSchnorr, verifySchnorr, xOnlyPointFromScalar } from "tiny-secp256k1";
import { bytesToHex, hexToBytes, isHex } from "./hex.js";
import type { SignatureVerifier, Signer } from "./signer.js";

/**
 * BIP-340 on libsecp256k1 compiled to WebAssembly (tiny-secp256k1, from bitcoinjs), for the processes that sign or
 * check on every job: the coordinator checks every signed request of every node (thousands of heartbeats a second at
 * scale) and two node signatures per job, and signs each job's receipt; a node signs each result commitment and each
 * receipt. Measured on the 2-core CI box: 0.21 ms a verification against 1.06 ms for @noble/curves (0.5 ms with
 * noble's per-key tables, which cost 6–48 ms per new key), 0.32 ms a signature against 3.0 ms. @noble/curves stays
 * the reference (`secretKeySigner`, `verifySchnorr`, in the main entry, which the browser dashboard imports too); these
 * are tested to give the same answers. Imported from `@tessera/protocol/wasm-schnorr`.
 */

/** A signer for one key, with fresh auxiliary randomness for each signature, as BIP-340 recommends. */
export function wasmSchnorrSigner(secretKeyHex: string): Signer {
  const secret = hexToBytes(secretKeyHex);
  return {
    publicKeyHex: bytesToHex(xOnlyPointFromScalar(secret)),
    sign: (digest) => bytesToHex(signSchnorr(digest, secret, crypto.getRandomValues(new Uint8Array(32)))),
  };
}

/** Never throws: malformed keys or signatures simply fail verification. */
export const wasmSchnorrVerifier: SignatureVerifier = {
  verify(signatureHex: string, digest: Uint8Array, publicKeyHex: string): boolean {
    if (!isHex(signatureHex, 64) || !isHex(publicKeyHex, 32) || digest.length !== 32) return false;
    try {
      return verifySchnorr(digest, hexToBytes(publicKeyHex), hexToBytes(signatureHex));
    } catch {
      // Points off the curve or scalars out of range are thrown as errors by the library; they are invalid.
      return false;
    }
  },
};
