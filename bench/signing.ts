/**
 * signing: what one BIP-340 signature costs with each signer Tessera has, in one run, interleaved round by round:
 *   - `wasmSchnorrSigner` (@tessera/protocol/wasm-schnorr), what the coordinator signs receipts with and a daemon its
 *     result commitments, receipts and requests: the key pair worked out once, the nonce point in libsecp256k1;
 *   - libsecp256k1's own `signSchnorr` (tiny-secp256k1), which derives the key pair again on every call: what
 *     `wasmSchnorrSigner` called until 2026-12-07, the baseline;
 *   - `secretKeySigner` (@noble/curves, the reference), for scale.
 * Each round signs `--signatures` fresh 32-byte digests with fresh auxiliary randomness on each side; the figures are
 * medians over rounds of the mean time a signature, and the ratio is the baseline's time over the new signer's.
 *
 *   npm run bench -- signing [--signatures 2000] [--rounds 9]
 */
import { parseArgs } from "node:util";
import { signSchnorr } from "tiny-secp256k1";
import { generateKeyPair, hexToBytes, secretKeySigner } from "@tessera/protocol";
import { wasmSchnorrSigner } from "@tessera/protocol/wasm-schnorr";
import { fmt, percentile } from "./lib-stats.js";

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { signatures: { type: "string", default: "2000" }, rounds: { type: "string", default: "9" } } });
  const signatures = Number(values.signatures);
  const rounds = Number(values.rounds);
  if (![signatures, rounds].every((n) => Number.isInteger(n) && n > 0)) throw new Error("--signatures and --rounds take positive integers");
  const { secretKeyHex } = generateKeyPair();
  const secret = hexToBytes(secretKeyHex);
  const aux = () => crypto.getRandomValues(new Uint8Array(32));
  const keyPairOnce = wasmSchnorrSigner(secretKeyHex);
  const reference = secretKeySigner(secretKeyHex, aux);
  const sides = {
    "wasmSchnorrSigner (key pair once)": (digest: Uint8Array) => keyPairOnce.sign(digest),
    "tiny-secp256k1 signSchnorr (baseline)": (digest: Uint8Array) => signSchnorr(digest, secret, aux()),
    "@noble/curves (reference)": (digest: Uint8Array) => reference.sign(digest),
  };
  const names = Object.keys(sides) as (keyof typeof sides)[];
  const timesUs = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<keyof typeof sides, number[]>;
  for (const name of names) for (let i = 0; i < 200; i++) sides[name](crypto.getRandomValues(new Uint8Array(32))); // warm-up
  for (let r = 0; r < rounds; r++) {
    // The order rotates each round, so no side always runs right after the same other.
    for (let s = 0; s < names.length; s++) {
      const name = names[(r + s) % names.length]!;
      const sign = sides[name];
      const digests = Array.from({ length: name.startsWith("@noble") ? Math.ceil(signatures / 10) : signatures }, () => crypto.getRandomValues(new Uint8Array(32)));
      const started = performance.now();
      for (const digest of digests) sign(digest);
      timesUs[name].push(((performance.now() - started) * 1000) / digests.length);
    }
  }
  process.stdout.write(`signing: ${rounds} rounds of ${signatures} signatures a side (the reference a tenth), µs a signature\n`);
  for (const name of names) {
    const t = timesUs[name];
    process.stdout.write(`  ${name.padEnd(40)} median ${fmt(percentile(t, 50))}  min ${fmt(Math.min(...t))}  max ${fmt(Math.max(...t))}\n`);
  }
  const ratio = percentile(timesUs[names[1]!], 50) / percentile(timesUs[names[0]!], 50);
  process.stdout.write(`RESULT signing_speedup_vs_libsecp256k1_sign ${fmt(ratio)}\n`);
}
