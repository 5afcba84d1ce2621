import { schnorr } from "@noble/curves/secp256k1.js";
import { bech32 } from "@scure/base";
import { bytesToHex, hexToBytes, isHex } from "./hex.js";

/**
 * Node keys: secp256k1, BIP-340 x-only public keys. Shown as NIP-19 bech32 (`npub1…`, `nsec1…`) or 64-char hex.
 * A node's id on the network is its public key in hex.
 */
export interface KeyPair {
  secretKeyHex: string;
  publicKeyHex: string;
}

export function generateKeyPair(randomBytes: (n: number) => Uint8Array = defaultRandom): KeyPair {
  for (;;) {
    const secret = randomBytes(32);
    try {
      return { secretKeyHex: bytesToHex(secret), publicKeyHex: bytesToHex(schnorr.getPublicKey(secret)) };
    } catch {
      // The 32 random bytes were zero or above the curve order (probability ~2^-128); draw again.
    }
  }
}

export function publicKeyFromSecret(secretKeyHex: string): string {
  return bytesToHex(schnorr.getPublicKey(hexToBytes(secretKeyHex)));
}

function defaultRandom(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

const BECH32_LIMIT = 5000;

export function encodeNpub(publicKeyHex: string): string {
  return bech32.encode("npub", bech32.toWords(hexToBytes(publicKeyHex)), BECH32_LIMIT);
}

export function encodeNsec(secretKeyHex: string): string {
  return bech32.encode("nsec", bech32.toWords(hexToBytes(secretKeyHex)), BECH32_LIMIT);
}

/** Accepts `npub1…` or 64-char hex; returns hex, or undefined when the text is neither. */
export function parsePublicKey(text: string): string | undefined {
  return parseKey(text, "npub");
}

/** Accepts `nsec1…` or 64-char hex; returns hex, or undefined when the text is neither. */
export function parseSecretKey(text: string): string | undefined {
  return parseKey(text, "nsec");
}

function parseKey(text: string, prefix: "npub" | "nsec"): string | undefined {
  const trimmed = text.trim();
  if (isHex(trimmed.toLowerCase(), 32)) return trimmed.toLowerCase();
  try {
    const decoded = bech32.decode(trimmed as `${string}1${string}`, BECH32_LIMIT);
    if (decoded.prefix !== prefix) return undefined;
    const bytes = bech32.fromWords(decoded.words);
    return bytes.length === 32 ? bytesToHex(bytes) : undefined;
  } catch {
    return undefined;
  }
}
