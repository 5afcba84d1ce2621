import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import {
  TesseraError,
  encodeNpub,
  encodeNsec,
  generateKeyPair,
  parseSecretKey,
  publicKeyFromSecret,
  secretKeySigner,
  type KeyPair,
  type Signer,
} from "@tessera/protocol";

/**
 * The node's key file (keys.toml, mode 0600): the secret shown as `nsec1…`, the public key as `npub1…` and hex.
 * The node id on the network is the hex public key. Only `nsec` is authoritative; the rest is for humans and is
 * checked against it on load so a hand-edited file cannot silently mean another node.
 */
export interface NodeKeys extends KeyPair {
  npub: string;
}

/** A node key (`keys.toml`: the node's identity) or an operator key (`operator.toml`: vouches for node keys). */
export type KeyFileKind = "node" | "operator";

const KIND_TEXT: Record<KeyFileKind, { header: string; idLabel: string; create: string }> = {
  node: { header: "Tessera node key. Whoever holds this file can act as this node", idLabel: "Node id", create: "`tessera init`" },
  operator: { header: "Tessera operator key. Whoever holds this file can enrol nodes as this operator and is paid as it", idLabel: "Operator id", create: "`tessera operator init`" },
};

export function renderKeyFile(keys: KeyPair, kind: KeyFileKind = "node"): string {
  return [
    `# ${KIND_TEXT[kind].header}: keep it private (mode 0600).`,
    `# ${KIND_TEXT[kind].idLabel} (hex public key): ${keys.publicKeyHex}`,
    `npub = "${encodeNpub(keys.publicKeyHex)}"`,
    `nsec = "${encodeNsec(keys.secretKeyHex)}"`,
    "",
  ].join("\n");
}

export function createKeyFile(path: string, randomBytes?: (n: number) => Uint8Array, kind: KeyFileKind = "node"): NodeKeys {
  const keys = generateKeyPair(randomBytes);
  // `wx`: never overwrite an existing identity; mode applies at creation, chmod covers a permissive umask.
  writeFileSync(path, renderKeyFile(keys, kind), { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return { ...keys, npub: encodeNpub(keys.publicKeyHex) };
}

export function readKeyFile(path: string, kind: KeyFileKind = "node"): NodeKeys {
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new TesseraError("not_found", `no ${kind} key at ${path}: run ${KIND_TEXT[kind].create} (with the same --home) first`);
    }
    throw new TesseraError("bad_request", `cannot read ${kind} key ${path}: ${code ?? String(err)}`, { cause: err });
  }
  let table: Record<string, unknown>;
  try {
    table = parseToml(source) as Record<string, unknown>;
  } catch (err) {
    throw new TesseraError("bad_request", `${kind} key ${path} is not valid TOML`, { cause: err });
  }
  const secretKeyHex = typeof table.nsec === "string" ? parseSecretKey(table.nsec) : undefined;
  if (!secretKeyHex) throw new TesseraError("bad_request", `${kind} key ${path} has no valid nsec`);
  let publicKeyHex: string;
  try {
    publicKeyHex = publicKeyFromSecret(secretKeyHex);
  } catch (err) {
    throw new TesseraError("bad_request", `${kind} key ${path}: nsec is not a valid secp256k1 key`, { cause: err });
  }
  const npub = encodeNpub(publicKeyHex);
  if (table.npub !== undefined && table.npub !== npub) {
    throw new TesseraError("bad_request", `${kind} key ${path}: npub does not match nsec (file edited by hand?)`);
  }
  return { secretKeyHex, publicKeyHex, npub };
}

export function signerFromKeyFile(path: string, kind: KeyFileKind = "node"): Signer {
  return secretKeySigner(readKeyFile(path, kind).secretKeyHex);
}
