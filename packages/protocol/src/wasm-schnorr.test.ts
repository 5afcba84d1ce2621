import { describe, expect, it } from "vitest";
import { sha256 } from "@noble/hashes/sha2.js";
import { pointFromScalar, signSchnorr } from "tiny-secp256k1";
import { authDigest } from "./auth-header.js";
import { bytesToHex, hexToBytes } from "./hex.js";
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

/** BIP-340's test vectors 0-3, the ones with a secret key (bip-0340/test-vectors.csv): secret, public key, aux, message, signature. */
const BIP340_SIGNING_VECTORS = [
  [
    "0000000000000000000000000000000000000000000000000000000000000003",
    "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0",
  ],
  [
    "B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF",
    "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
    "0000000000000000000000000000000000000000000000000000000000000001",
    "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
    "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A",
  ],
  [
    "C90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B14E5C9",
    "DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8",
    "C87AA53824B4D7AE2EB035A2B5BBBCCC080E76CDC6D1692C4B0B62D798E6D906",
    "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C",
    "5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7",
  ],
  [
    "0B432B2677937381AEF05BB02A66ECD012773062CF3FA2549E44F58ED2401710",
    "25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517",
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
    "7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3",
  ],
] as const;

describe("wasmSchnorrSigner's BIP-340 signing", () => {
  it("makes BIP-340's test-vector signatures", () => {
    for (const [secret, publicKey, aux, message, signature] of BIP340_SIGNING_VECTORS) {
      const signer = wasmSchnorrSigner(secret.toLowerCase(), () => hexToBytes(aux.toLowerCase()));
      expect(signer.publicKeyHex).toBe(publicKey.toLowerCase());
      expect(signer.sign(hexToBytes(message.toLowerCase()))).toBe(signature.toLowerCase());
    }
  });

  it("signs byte for byte as libsecp256k1's own signSchnorr, for keys and nonces of either parity", () => {
    const keyParities = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const { secretKeyHex } = generateKeyPair();
      const aux = crypto.getRandomValues(new Uint8Array(32));
      const digest = crypto.getRandomValues(new Uint8Array(32));
      const expected = bytesToHex(signSchnorr(digest, hexToBytes(secretKeyHex), aux));
      expect(wasmSchnorrSigner(secretKeyHex, () => aux).sign(digest)).toBe(expected);
      // The public point's y parity decides whether the secret is negated (checked below); the nonce point's, whether the
      // nonce is, a fair coin for each signature, so 400 equal signatures have taken both branches.
      keyParities.add(pointFromScalar(hexToBytes(secretKeyHex), true)![0]!);
    }
    expect([...keyParities].sort()).toEqual([2, 3]);
  });

  it("draws fresh auxiliary randomness for each signature by default", () => {
    const signer = wasmSchnorrSigner(generateKeyPair().secretKeyHex);
    const digest = sha256(new Uint8Array([7]));
    expect(signer.sign(digest)).not.toBe(signer.sign(digest));
  });

  it("refuses a secret that is not a scalar, a digest that is not 32 bytes and auxiliary data that is not 32 bytes", () => {
    expect(() => wasmSchnorrSigner("00".repeat(32))).toThrow();
    expect(() => wasmSchnorrSigner("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")).toThrow(); // n itself
    expect(() => wasmSchnorrSigner("zz".repeat(32))).toThrow();
    const { secretKeyHex } = generateKeyPair();
    expect(() => wasmSchnorrSigner(secretKeyHex).sign(new Uint8Array(31))).toThrow(/32-byte digest/);
    expect(() => wasmSchnorrSigner(secretKeyHex, () => new Uint8Array(16)).sign(new Uint8Array(32))).toThrow(/auxiliary randomness is 32 bytes/);
  });
});
