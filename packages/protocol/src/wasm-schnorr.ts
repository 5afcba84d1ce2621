import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { bytesToNumberBE, numberToBytesBE } from "@noble/curves/utils.js";
import { pointFromScalar, verifySchnorr } from "tiny-secp256k1";
import { bytesToHex, hexToBytes, isHex } from "./hex.js";
import type { SignatureVerifier, Signer } from "./signer.js";

/**
 * BIP-340 on libsecp256k1 compiled to WebAssembly (tiny-secp256k1, from bitcoinjs), for the processes that sign or
 * check on every job: the coordinator checks every signed request of every node (thousands of heartbeats a second at
 * scale) and two node signatures per job, and signs each job's receipt; a node signs each result commitment and each
 * receipt. Measured on the 2-core CI box: 0.21 ms a verification against 1.06 ms for @noble/curves (0.5 ms with
 * noble's per-key tables, which cost 6–48 ms per new key); a signature 0.1 ms against 2.1 ms (`npm run bench --
 * signing`). @noble/curves stays the reference (`secretKeySigner`, `verifySchnorr`, in the main entry, which the
 * browser dashboard imports too); these are tested to give the same answers. Imported from
 * `@tessera/protocol/wasm-schnorr`.
 */

/** The order of secp256k1's group. */
const N = secp256k1.Point.Fn.ORDER;
const { taggedHash } = schnorr.utils;
const scalarBytes = (x: bigint): Uint8Array => numberToBytesBE(x, 32);

/**
 * A signer for one key, with fresh auxiliary randomness for each signature, as BIP-340 recommends (`auxRandom`
 * supplies it instead, for test vectors).
 *
 * BIP-340's signing algorithm, with the key pair worked out once: libsecp256k1's own `signSchnorr` (tiny-secp256k1)
 * derives the public key from the secret on every call, a second constant-time multiplication of the generator as
 * costly as the nonce's, and a daemon signs two things a job (its result commitment and its receipt), the coordinator
 * one (the receipt). Here the nonce point `R = k'G` stays in libsecp256k1 (constant-time); the nonce derivation, the
 * challenge and `s = k + e·d mod n` follow the BIP in JavaScript (with @noble/curves' tagged hash), whose BigInt
 * arithmetic on the secret is what @noble/curves, the reference signer, does for all of it. Signatures are byte for
 * byte libsecp256k1's for the same key, message and auxiliary data (tested, with BIP-340's test vectors), in 0.56-0.64
 * of the time (`npm run bench -- signing`: 107-127 against 187-199 µs on the 2-core development VM).
 */
export function wasmSchnorrSigner(secretKeyHex: string, auxRandom: () => Uint8Array = () => crypto.getRandomValues(new Uint8Array(32))): Signer {
  const givenBytes = hexToBytes(secretKeyHex);
  const publicPoint = pointFromScalar(givenBytes, true);
  if (publicPoint === null) throw new Error("the secret key is not a valid secp256k1 scalar");
  const publicX = publicPoint.subarray(1);
  // BIP-340 signs with the secret whose public point has an even y (prefix 02): the other one is negated.
  const given = bytesToNumberBE(givenBytes);
  const secret = publicPoint[0] === 2 ? given : N - given;
  const secretBytes = scalarBytes(secret);
  return {
    publicKeyHex: bytesToHex(publicX),
    sign(digest) {
      if (digest.length !== 32) throw new Error(`a BIP-340 signature here is over a 32-byte digest, got ${digest.length} bytes`);
      const random = auxRandom();
      if (random.length !== 32) throw new Error(`BIP-340 auxiliary randomness is 32 bytes, got ${random.length}`);
      const aux = taggedHash("BIP0340/aux", random);
      const masked = secretBytes.map((byte, i) => byte ^ aux[i]!);
      const nonce = bytesToNumberBE(taggedHash("BIP0340/nonce", masked, publicX, digest)) % N;
      if (nonce === 0n) throw new Error("BIP-340 nonce is zero (probability 2^-256)");
      const noncePoint = pointFromScalar(scalarBytes(nonce), true)!;
      const k = noncePoint[0] === 2 ? nonce : N - nonce;
      const r = noncePoint.subarray(1);
      const challenge = bytesToNumberBE(taggedHash("BIP0340/challenge", r, publicX, digest)) % N;
      const signature = new Uint8Array(64);
      signature.set(r);
      signature.set(scalarBytes((k + challenge * secret) % N), 32);
      return bytesToHex(signature);
    },
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
