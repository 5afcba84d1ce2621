import { schnorr } from "@noble/curves/secp256k1.js";
import { bytesToHex, hexToBytes } from "./hex.js";

/**
 * Anything that can make BIP-340 signatures for one key. Injected so tests, hardware keys and remote signers can
 * stand in for an in-memory secret.
 */
export interface Signer {
  readonly publicKeyHex: string;
  /** Signs a 32-byte message digest; returns the 64-byte signature as hex. */
  sign(digest: Uint8Array): string;
}

export function secretKeySigner(secretKeyHex: string, auxRandom?: () => Uint8Array): Signer {
  const secret = hexToBytes(secretKeyHex);
  return {
    publicKeyHex: bytesToHex(schnorr.getPublicKey(secret)),
    sign: (digest) => bytesToHex(schnorr.sign(digest, secret, auxRandom?.())),
  };
}

/**
 * Checks BIP-340 signatures. Servers inject a faster implementation (the coordinator's libsecp256k1 in WebAssembly)
 * that must give the same answers as `referenceVerifier`; never throws.
 */
export interface SignatureVerifier {
  verify(signatureHex: string, digest: Uint8Array, publicKeyHex: string): boolean;
}

/** The reference: @noble/curves. */
export const referenceVerifier: SignatureVerifier = { verify: (signatureHex, digest, publicKeyHex) => verifySchnorr(signatureHex, digest, publicKeyHex) };

/** Never throws: malformed keys or signatures simply fail verification. */
export function verifySchnorr(signatureHex: string, digest: Uint8Array, publicKeyHex: string): boolean {
  try {
    return schnorr.verify(hexToBytes(signatureHex), digest, hexToBytes(publicKeyHex));
  } catch {
    return false;
  }
}
