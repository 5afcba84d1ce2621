import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKeyPair, secretKeySigner, signDelegation, verifyDelegation, verifyKeyRotation } from "@tessera/protocol";
import { createKeyFile, readKeyFile } from "./key-store.js";
import { DELEGATION_RENEW_BEFORE_SECONDS, loadNodeIdentity, rotateNodeKey } from "./identity.js";
import { resolveNodePaths, type NodePaths } from "./paths.js";

const NOW = 1_800_000_000;
let home: string;
let paths: NodePaths;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "tessera-identity-"));
  paths = resolveNodePaths(home, {}, home);
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

const nodeSigner = () => secretKeySigner(createKeyFile(paths.keyFile).secretKeyHex);

describe("a node's identity at registration", () => {
  it("is its own operator with neither an operator key nor a delegation", () => {
    const node = nodeSigner();
    expect(loadNodeIdentity(paths, node, NOW)).toEqual({ operatorId: node.publicKeyHex, delegation: undefined, rotation: undefined });
  });

  it("signs a delegation with the operator key on this machine, saves it 0600, and reuses it", () => {
    const node = nodeSigner();
    const operator = createKeyFile(paths.operatorKeyFile, undefined, "operator");
    const first = loadNodeIdentity(paths, node, NOW);
    expect(first.operatorId).toBe(operator.publicKeyHex);
    expect(verifyDelegation(first.delegation, node.publicKeyHex, NOW).ok).toBe(true);
    expect(statSync(paths.delegationFile).mode & 0o777).toBe(0o600);
    expect(loadNodeIdentity(paths, node, NOW + 60).delegation).toEqual(first.delegation);
    // Close to its end it is renewed.
    const late = first.delegation!.expires_at - DELEGATION_RENEW_BEFORE_SECONDS + 1;
    expect(loadNodeIdentity(paths, node, late).delegation!.issued_at).toBe(late);
  });

  it("uses a delegation signed elsewhere, and says how to get a new one when it is wrong or expired", () => {
    const node = nodeSigner();
    const remoteOperator = secretKeySigner(generateKeyPair().secretKeyHex);
    const delegation = signDelegation(remoteOperator, node.publicKeyHex, { nowSeconds: NOW, ttlSeconds: 3600 });
    writeFileSync(paths.delegationFile, JSON.stringify(delegation));
    expect(loadNodeIdentity(paths, node, NOW).operatorId).toBe(remoteOperator.publicKeyHex);
    expect(() => loadNodeIdentity(paths, node, NOW + 3600)).toThrow(/expired.*tessera operator delegate npub1/);
    writeFileSync(paths.delegationFile, JSON.stringify(signDelegation(remoteOperator, generateKeyPair().publicKeyHex, { nowSeconds: NOW })));
    expect(() => loadNodeIdentity(paths, node, NOW)).toThrow(/another node key/);
    writeFileSync(paths.delegationFile, "{not json");
    expect(() => loadNodeIdentity(paths, node, NOW)).toThrow(/not readable JSON/);
  });

  it("never renews a delegation into another operator's name", () => {
    const node = nodeSigner();
    const remoteOperator = secretKeySigner(generateKeyPair().secretKeyHex);
    createKeyFile(paths.operatorKeyFile, undefined, "operator");
    const delegation = signDelegation(remoteOperator, node.publicKeyHex, { nowSeconds: NOW, ttlSeconds: 86_400 });
    writeFileSync(paths.delegationFile, JSON.stringify(delegation));
    expect(loadNodeIdentity(paths, node, NOW).delegation).toEqual(delegation);
  });
});

describe("key rotation", () => {
  it("makes a new key under the same operator, keeps the old one, and presents the signed hand-over", () => {
    const old = nodeSigner();
    const operator = createKeyFile(paths.operatorKeyFile, undefined, "operator");
    loadNodeIdentity(paths, old, NOW);
    const rotated = rotateNodeKey(paths, NOW + 10);
    expect(rotated).toMatchObject({ previous: old.publicKeyHex, operator: operator.publicKeyHex });
    expect(readKeyFile(paths.previousKeyFile).publicKeyHex).toBe(old.publicKeyHex);
    const next = secretKeySigner(readKeyFile(paths.keyFile).secretKeyHex);
    expect(next.publicKeyHex).toBe(rotated.next);
    const identity = loadNodeIdentity(paths, next, NOW + 20);
    expect(identity.operatorId).toBe(operator.publicKeyHex);
    expect(identity.rotation?.previous_key).toBe(old.publicKeyHex);
    expect(verifyKeyRotation(identity.rotation!, next.publicKeyHex, NOW + 20)).toBe(true);
    for (const file of [paths.keyFile, paths.previousKeyFile, paths.rotationFile, paths.delegationFile]) expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("refuses without the operator key, and changes nothing", () => {
    nodeSigner();
    const before = readFileSync(paths.keyFile, "utf8");
    expect(() => rotateNodeKey(paths, NOW)).toThrow(/needs the operator key/);
    expect(readFileSync(paths.keyFile, "utf8")).toBe(before);
  });
});
