import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  DELEGATION_FAILURES,
  type KeyRotation,
  type NodeDelegation,
  type Signer,
  TesseraError,
  encodeNpub,
  generateKeyPair,
  secretKeySigner,
  signDelegation,
  signKeyRotation,
  verifyDelegation,
  verifyKeyRotation,
} from "@tessera/protocol";
import { type KeyFileKind, type NodeKeys, createKeyFile, readKeyFile, renderKeyFile, signerFromKeyFile } from "./key-store.js";
import type { NodePaths } from "./paths.js";

/** A delegation this close to its end is renewed when the operator key is at hand. */
export const DELEGATION_RENEW_BEFORE_SECONDS = 30 * 86_400;

/** What a node presents about who it is when it registers, beyond its own key. */
export interface NodeIdentity {
  /** The operator the node counts under: the delegation's operator, or the node itself without one. */
  operatorId: string;
  delegation: NodeDelegation | undefined;
  rotation: KeyRotation | undefined;
}

/** Reads the key file, or makes it (0600, in a 0700 directory) when there is none. */
export function ensurePrivateKeyFile(path: string, kind: KeyFileKind): { keys: NodeKeys; created: boolean } {
  if (existsSync(path)) return { keys: readKeyFile(path, kind), created: false };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  return { keys: createKeyFile(path, undefined, kind), created: true };
}

/** Writes a private file atomically (temp + rename), so a crash never leaves half an identity. */
export function writePrivateFile(path: string, text: string): void {
  const temp = `${path}.tmp-${process.pid}`;
  writeFileSync(temp, text, { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new TesseraError("bad_request", `${what} ${path} is not readable JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Reads what the node presents at registration. The delegation comes from `delegation.json`; when the operator key
 * is on this machine (`operator.toml`), a missing, invalid or nearly expired delegation is signed anew and saved.
 * Without either file the node is its own operator. A rotation hand-over (`rotation.json`) is presented until the
 * file is removed; the coordinator treats a repeated one as the same hand-over.
 */
export function loadNodeIdentity(paths: NodePaths, node: Signer, nowSeconds: number): NodeIdentity {
  const nodeId = node.publicKeyHex;
  let delegation: NodeDelegation | undefined;
  let problem: string | undefined;
  if (existsSync(paths.delegationFile)) {
    const check = verifyDelegation(readJson(paths.delegationFile, "delegation"), nodeId, nowSeconds);
    if (check.ok) delegation = check.delegation;
    else problem = DELEGATION_FAILURES[check.reason];
  }
  const renew = delegation === undefined || delegation.expires_at - nowSeconds < DELEGATION_RENEW_BEFORE_SECONDS;
  if (renew && existsSync(paths.operatorKeyFile)) {
    const operator = signerFromKeyFile(paths.operatorKeyFile, "operator");
    // Never move a node to another operator by renewing: the coordinator would refuse the key for good.
    if (delegation === undefined || delegation.operator === operator.publicKeyHex) {
      delegation = signDelegation(operator, nodeId, { nowSeconds });
      writePrivateFile(paths.delegationFile, `${JSON.stringify(delegation, null, 2)}\n`);
      problem = undefined;
    }
  }
  if (problem !== undefined) {
    throw new TesseraError(
      "bad_request",
      `${paths.delegationFile}: ${problem}. On the operator's machine run \`tessera operator delegate ${encodeNpub(nodeId)}\` and save its output there`,
    );
  }
  let rotation: KeyRotation | undefined;
  if (existsSync(paths.rotationFile)) {
    rotation = readJson(paths.rotationFile, "rotation") as KeyRotation;
    if (!verifyKeyRotation(rotation, nodeId, nowSeconds)) {
      throw new TesseraError("bad_request", `${paths.rotationFile} is not a hand-over to this node's key; remove it if the rotation is over`);
    }
  }
  return { operatorId: delegation?.operator ?? nodeId, delegation, rotation };
}

export interface RotatedKeys {
  previous: string;
  next: string;
  operator: string;
}

/**
 * Replaces the node key: the old one is kept as `keys.previous.toml` and signs its hand-over to the new one
 * (`rotation.json`); the operator key signs the new key's delegation. The coordinator keeps accepting the old key for
 * 24 h after the new one first registers, so a daemon still running with it goes on serving until it restarts.
 * Needs the operator key on this machine: a node's operator never changes, and a node without one is its own.
 */
export function rotateNodeKey(paths: NodePaths, nowSeconds: number, randomBytes?: (n: number) => Uint8Array): RotatedKeys {
  const old = readKeyFile(paths.keyFile);
  if (!existsSync(paths.operatorKeyFile)) {
    throw new TesseraError(
      "bad_request",
      `rotation needs the operator key (${paths.operatorKeyFile}): a node's new key must be vouched for by the same operator. Copy operator.toml here, or rotate on the operator's machine`,
    );
  }
  const operator = signerFromKeyFile(paths.operatorKeyFile, "operator");
  if (existsSync(paths.delegationFile)) {
    const current = verifyDelegation(readJson(paths.delegationFile, "delegation"), old.publicKeyHex, nowSeconds);
    if (current.ok && current.delegation.operator !== operator.publicKeyHex) {
      throw new TesseraError("bad_request", `this node counts under operator ${encodeNpub(current.delegation.operator)}, not the operator key in ${paths.operatorKeyFile}`);
    }
  }
  const next = generateKeyPair(randomBytes);
  const rotation = signKeyRotation(secretKeySigner(old.secretKeyHex), next.publicKeyHex, nowSeconds);
  const delegation = signDelegation(operator, next.publicKeyHex, { nowSeconds });
  // Old key first, the new key last: an interruption leaves the node on its old, still valid identity.
  writePrivateFile(paths.previousKeyFile, renderKeyFile(old));
  writePrivateFile(paths.rotationFile, `${JSON.stringify(rotation, null, 2)}\n`);
  writePrivateFile(paths.delegationFile, `${JSON.stringify(delegation, null, 2)}\n`);
  writePrivateFile(paths.keyFile, renderKeyFile(next));
  return { previous: old.publicKeyHex, next: next.publicKeyHex, operator: operator.publicKeyHex };
}
