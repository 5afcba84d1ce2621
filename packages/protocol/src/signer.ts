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

/** Never throws: malformed keys or signatures simply fail verification. */
export function verifySchnorr(signatureHex: string, digest: Uint8Array, publicKeyHex: string): boolean {
  try {
    return schnorr.verify(hexToBytes(signatureHex), digest, hexToBytes(publicKeyHex));
  } catch {
    return false;
  }
}
