/**
 * A BIP-340 signer for the benchmarks' simulated nodes: the same signatures as `secretKeySigner` (checked at start),
 * but with the public key computed once and without noble's verify-after-sign, which roughly triples the cost of each
 * signature. Thousands of simulated nodes heartbeating from one process need that headroom; real nodes sign a
 * heartbeat every 30 s and keep the checked signer.
 */
import { schnorr } from "@noble/curves/secp256k1.js";
import { bytesToNumberBE, numberToBytesBE } from "@noble/curves/utils.js";
import { type Signer, bytesToHex, hexToBytes, secretKeySigner } from "@tessera/protocol";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const G = schnorr.Point.BASE;
const { taggedHash } = schnorr.utils;

export function fastSigner(secretKeyHex: string): Signer {
  const secret = bytesToNumberBE(hexToBytes(secretKeyHex));
  const P = G.multiply(secret).toAffine();
  const d = (P.y & 1n) === 0n ? secret : N - secret;
  const px = numberToBytesBE(P.x, 32);
  const dBytes = numberToBytesBE(d, 32);
  const signer: Signer = {
    publicKeyHex: bytesToHex(px),
    sign(digest) {
      const aux = crypto.getRandomValues(new Uint8Array(32));
      const t = taggedHash("BIP0340/aux", aux).map((b, i) => b ^ dBytes[i]!);
      const k0 = bytesToNumberBE(taggedHash("BIP0340/nonce", t, px, digest)) % N;
      const R = G.multiply(k0).toAffine();
      const k = (R.y & 1n) === 0n ? k0 : N - k0;
      const rx = numberToBytesBE(R.x, 32);
      const e = bytesToNumberBE(taggedHash("BIP0340/challenge", rx, px, digest)) % N;
      const sig = new Uint8Array(64);
      sig.set(rx, 0);
      sig.set(numberToBytesBE((k + e * d) % N, 32), 32);
      return bytesToHex(sig);
    },
  };
  const probe = new Uint8Array(32).fill(7);
  if (!schnorr.verify(hexToBytes(signer.sign(probe)), probe, px) || secretKeySigner(secretKeyHex).publicKeyHex !== signer.publicKeyHex) {
    throw new Error("fastSigner does not agree with the checked signer");
  }
  return signer;
}
