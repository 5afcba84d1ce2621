import { afterEach, describe, expect, it } from "vitest";
import { JOIN_TOKEN_PREFIX, type NodeRegister, type Signer, encodeNpub, hashJoinToken, signDelegation, signKeyRotation } from "@tessera/protocol";
import { randomBytes } from "node:crypto";
import type { AdmissionMode } from "../src/trust/admission-modes.js";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";

let t: TestCoordinator | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const DAY_S = 86_400;
const nowS = () => Math.floor(t!.clock.now() / 1000);

async function coordinatorWith(admission: AdmissionMode): Promise<TestCoordinator> {
  t = await testCoordinator({ admission });
  return t;
}

async function joinToken(options: { uses?: number; expiresInS?: number } = {}): Promise<string> {
  const token = JOIN_TOKEN_PREFIX + randomBytes(24).toString("base64url");
  await t!.coordinator.ctx.store.createJoinToken({
    id: `jt-${randomBytes(4).toString("hex")}`,
    tokenSha256: hashJoinToken(token),
    note: null,
    maxUses: options.uses ?? 1,
    createdAt: new Date(t!.clock.now()),
    expiresAt: new Date(t!.clock.now() + (options.expiresInS ?? DAY_S) * 1000),
  });
  return token;
}

/** A node under an operator: its registration carries the operator's delegation. */
function delegated(operator: Signer, extra: Partial<NodeRegister> = {}) {
  const node = newNode();
  const reg: NodeRegister = { ...registration(node.id), delegation: signDelegation(operator, node.id, { nowSeconds: nowS() }), ...extra };
  return { ...node, reg };
}

const register = (signer: Signer, reg: NodeRegister) => signedInject(t!, signer, "POST", "/api/v1/nodes/register", reg);
const heartbeat = (signer: Signer) =>
  signedInject(t!, signer, "POST", "/api/v1/nodes/heartbeat", { type: "heartbeat", gpus: [], loaded_models: [], active_jobs: 0, max_concurrency: 2, draining: false });

describe("admission: open", () => {
  it("admits any keypair as its own operator, and a delegated node under its operator", async () => {
    await coordinatorWith("open");
    const alone = newNode();
    const res = await register(alone.signer, registration(alone.id));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ node_id: alone.id, operator: alone.id });
    const operator = newNode();
    const n = delegated(operator.signer);
    expect((await register(n.signer, n.reg)).json()).toMatchObject({ operator: operator.id });
    const operators = await t!.coordinator.ctx.store.listOperators();
    expect(operators.map((o) => [o.id, o.status, o.admittedVia, o.nodes]).sort()).toEqual(
      [[alone.id, "active", "open", 1], [operator.id, "active", "open", 1]].sort(),
    );
  });
});

describe("admission: token", () => {
  it("refuses a new operator without a join token, and changes nothing", async () => {
    await coordinatorWith("token");
    const n = newNode();
    const res = await register(n.signer, registration(n.id));
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: "forbidden", error_message: expect.stringContaining("tessera register --join-token") });
    expect(await t!.coordinator.ctx.store.getNode(n.id)).toBeUndefined();
    expect(await t!.coordinator.ctx.store.listOperators()).toEqual([]);
    expect(t!.coordinator.ctx.registry.get(n.id)).toBeUndefined();
  });

  it("admits with a join token; the operator's next node needs none; the token used twice is refused", async () => {
    await coordinatorWith("token");
    const token = await joinToken();
    const operator = newNode();
    const first = delegated(operator.signer, {});
    expect((await register(first.signer, { ...first.reg, join_token: token })).statusCode).toBe(200);
    const second = delegated(operator.signer);
    expect((await register(second.signer, second.reg)).statusCode).toBe(200);
    // Another operator with the same (now spent) token.
    const stranger = newNode();
    const again = await register(stranger.signer, { ...registration(stranger.id), join_token: token });
    expect(again.statusCode).toBe(403);
    expect(again.json().error_message).toMatch(/join token is not valid/);
    const [op] = await t!.coordinator.ctx.store.listOperators();
    expect(op).toMatchObject({ id: operator.id, status: "active", admittedVia: "token", nodes: 2 });
    expect((await t!.coordinator.ctx.store.listJoinTokens())[0]?.uses).toBe(1);
  });

  it("refuses an expired or unknown join token and a malformed one", async () => {
    await coordinatorWith("token");
    const expired = await joinToken({ expiresInS: 60 });
    t!.clock.advance(61_000);
    const n = newNode();
    expect((await register(n.signer, { ...registration(n.id), join_token: expired })).statusCode).toBe(403);
    const unknown = JOIN_TOKEN_PREFIX + "A".repeat(32);
    expect((await register(n.signer, { ...registration(n.id), join_token: unknown })).statusCode).toBe(403);
    const malformed = await register(n.signer, { ...registration(n.id), join_token: "letmein" });
    expect(malformed.statusCode).toBe(400);
    expect(await t!.coordinator.ctx.store.listOperators()).toEqual([]);
  });
});

describe("admission: approval", () => {
  it("keeps a new operator pending until the owner approves it; a join token skips the wait", async () => {
    await coordinatorWith("approval");
    const operator = newNode();
    const n = delegated(operator.signer);
    const waiting = await register(n.signer, n.reg);
    expect(waiting.statusCode).toBe(403);
    expect(waiting.json()).toMatchObject({ error: "pending_approval", error_message: expect.stringContaining(`operators approve ${encodeNpub(operator.id)}`) });
    expect(waiting.headers["retry-after"]).toBe("30");
    expect(t!.coordinator.ctx.registry.get(n.id)).toBeUndefined();
    expect((await t!.coordinator.ctx.store.getOperator(operator.id))?.status).toBe("pending");
    // Asking again changes nothing until the owner acts.
    expect((await register(n.signer, n.reg)).statusCode).toBe(403);
    await t!.coordinator.ctx.store.setOperatorStatus(operator.id, "active", new Date(t!.clock.now()), "approved");
    expect((await register(n.signer, n.reg)).statusCode).toBe(200);

    const other = newNode();
    const withToken = await register(other.signer, { ...registration(other.id), join_token: await joinToken() });
    expect(withToken.statusCode).toBe(200);
  });
});

describe("delegations", () => {
  it.each([
    ["forged (signed by another key)", (op: Signer, nodeId: string) => ({ ...signDelegation(op, nodeId, { nowSeconds: nowS() }), operator: newNode().id }), /signature/],
    ["expired", (op: Signer, nodeId: string) => signDelegation(op, nodeId, { nowSeconds: nowS() - 2 * DAY_S, ttlSeconds: DAY_S }), /expired/],
    ["for another node", (op: Signer) => signDelegation(op, newNode().id, { nowSeconds: nowS() }), /another node key/],
    ["issued in the future", (op: Signer, nodeId: string) => signDelegation(op, nodeId, { nowSeconds: nowS() + 3600 }), /future/],
  ])("refuses a %s delegation with 401, and stores nothing", async (_name, make, message) => {
    await coordinatorWith("open");
    const operator = newNode();
    const n = newNode();
    const res = await register(n.signer, { ...registration(n.id), delegation: make(operator.signer, n.id) });
    expect(res.statusCode).toBe(401);
    expect(res.json().error_message).toMatch(message);
    expect(await t!.coordinator.ctx.store.getNode(n.id)).toBeUndefined();
    expect(await t!.coordinator.ctx.store.listOperators()).toEqual([]);
  });

  it("lets a node that was its own operator come under an operator key once, and never back", async () => {
    await coordinatorWith("open");
    const operator = newNode();
    const n = newNode();
    expect((await register(n.signer, registration(n.id))).json()).toMatchObject({ operator: n.id });
    const under = { ...registration(n.id), delegation: signDelegation(operator.signer, n.id, { nowSeconds: nowS() }) };
    expect((await register(n.signer, under)).json()).toMatchObject({ operator: operator.id });
    expect(t!.coordinator.ctx.registry.get(n.id)?.operatorId).toBe(operator.id);
    expect((await register(n.signer, registration(n.id))).statusCode).toBe(403);
  });

  it("never lets a node key move to another operator", async () => {
    await coordinatorWith("open");
    const a = newNode();
    const b = newNode();
    const n = delegated(a.signer);
    expect((await register(n.signer, n.reg)).statusCode).toBe(200);
    const moved = await register(n.signer, { ...n.reg, delegation: signDelegation(b.signer, n.id, { nowSeconds: nowS() }) });
    expect(moved.statusCode).toBe(403);
    expect((await t!.coordinator.ctx.store.getNode(n.id))?.operatorId).toBe(a.id);
  });
});

describe("bans", () => {
  it("evicts a banned operator's nodes within one poll and refuses them from then on", async () => {
    await coordinatorWith("open");
    const operator = newNode();
    const n = delegated(operator.signer);
    const bystander = newNode();
    expect((await register(n.signer, n.reg)).statusCode).toBe(200);
    expect((await register(bystander.signer, registration(bystander.id))).statusCode).toBe(200);
    expect((await heartbeat(n.signer)).statusCode).toBe(200);
    await t!.coordinator.ctx.store.setOperatorStatus(operator.id, "banned", new Date(t!.clock.now()), "garbage answers");
    expect(await t!.coordinator.admissionWatch.poll()).toEqual([n.id]);
    expect((await heartbeat(n.signer)).statusCode).toBe(401);
    const refused = await register(n.signer, n.reg);
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error_message).toMatch(/banned.*garbage answers/);
    // Another node of the same operator, new key: refused too. The bystander is untouched.
    const fresh = delegated(operator.signer);
    expect((await register(fresh.signer, fresh.reg)).statusCode).toBe(403);
    expect((await heartbeat(bystander.signer)).statusCode).toBe(200);
  });
});

describe("key rotation", () => {
  it("hands a node's place to its new key; the old key works for 24 h, then is evicted and refused", async () => {
    await coordinatorWith("token");
    const operator = newNode();
    const old = delegated(operator.signer, {});
    expect((await register(old.signer, { ...old.reg, join_token: await joinToken() })).statusCode).toBe(200);
    const next = newNode();
    const rotation = signKeyRotation(old.signer, next.id, nowS());
    const reg: NodeRegister = { ...registration(next.id), delegation: signDelegation(operator.signer, next.id, { nowSeconds: nowS() }), rotation };
    expect((await register(next.signer, reg)).statusCode).toBe(200);
    expect(await t!.coordinator.ctx.store.getNode(old.id)).toMatchObject({ successorId: next.id });

    t!.clock.advance(23 * 3600 * 1000);
    expect((await heartbeat(old.signer)).statusCode).toBe(200);
    expect(await t!.coordinator.admissionWatch.poll()).toEqual([]);
    t!.clock.advance(3600 * 1000);
    expect(await t!.coordinator.admissionWatch.poll()).toEqual([old.id]);
    expect((await heartbeat(old.signer)).statusCode).toBe(401);
    const back = await register(old.signer, old.reg);
    expect(back.statusCode).toBe(401);
    expect(back.json().error_message).toMatch(/rotated/);
    expect((await heartbeat(next.signer)).statusCode).toBe(200);
  });

  it("never sheds a record: the new key inherits the old key's checks and quarantine", async () => {
    await coordinatorWith("open");
    const operator = newNode();
    const old = delegated(operator.signer);
    expect((await register(old.signer, old.reg)).statusCode).toBe(200);
    const standing = t!.coordinator.ctx.standing;
    standing.recordCheck(old.id, { passed: false });
    standing.recordCheck(old.id, { passed: false });
    expect(standing.isQuarantined(old.id)).toBe(true);
    const next = newNode();
    const reg: NodeRegister = { ...registration(next.id), delegation: signDelegation(operator.signer, next.id, { nowSeconds: nowS() }), rotation: signKeyRotation(old.signer, next.id, nowS()) };
    expect((await register(next.signer, reg)).statusCode).toBe(200);
    expect(standing.isQuarantined(next.id)).toBe(true);
    expect(standing.view(next.id, t!.clock.now())).toMatchObject({ checksFailed: 2, quarantined: true });
  });

  it("refuses a rotation not signed by the previous key, one that changes operator, and a second successor", async () => {
    await coordinatorWith("open");
    const operator = newNode();
    const old = delegated(operator.signer);
    expect((await register(old.signer, old.reg)).statusCode).toBe(200);
    const next = newNode();
    const forged = { ...signKeyRotation(newNode().signer, next.id, nowS()), previous_key: old.id };
    const withDelegation = (id: string, op: Signer) => ({ ...registration(id), delegation: signDelegation(op, id, { nowSeconds: nowS() }) });
    expect((await register(next.signer, { ...withDelegation(next.id, operator.signer), rotation: forged })).statusCode).toBe(401);
    const elsewhere = await register(next.signer, { ...withDelegation(next.id, newNode().signer), rotation: signKeyRotation(old.signer, next.id, nowS()) });
    expect(elsewhere.statusCode).toBe(403);
    expect((await register(next.signer, { ...withDelegation(next.id, operator.signer), rotation: signKeyRotation(old.signer, next.id, nowS()) })).statusCode).toBe(200);
    const third = newNode();
    const second = await register(third.signer, { ...withDelegation(third.id, operator.signer), rotation: signKeyRotation(old.signer, third.id, nowS()) });
    expect(second.statusCode).toBe(409);
  });
});

describe("quarantine release", () => {
  it("lifts a quarantine the owner asked to lift, within one poll; the node's next checks decide afresh", async () => {
    await coordinatorWith("open");
    const n = newNode();
    expect((await register(n.signer, registration(n.id))).statusCode).toBe(200);
    const standing = t!.coordinator.ctx.standing;
    standing.recordCheck(n.id, { passed: false });
    standing.recordCheck(n.id, { passed: false });
    expect(standing.isQuarantined(n.id)).toBe(true);
    await t!.coordinator.ctx.store.requestQuarantineRelease({ nodeId: n.id, requestedAt: new Date(t!.clock.now()), reason: "false alarm" });
    await t!.coordinator.admissionWatch.poll();
    expect(standing.isQuarantined(n.id)).toBe(false);
    expect(standing.view(n.id, t!.clock.now())).toMatchObject({ quarantined: false, checksFailed: 2 });
    // Taken once: a second poll finds nothing to do.
    expect(await t!.coordinator.ctx.store.takeQuarantineReleases()).toEqual([]);
  });
});

describe("restart", () => {
  it("brings back only nodes of admitted operators", async () => {
    await coordinatorWith("open");
    const good = newNode();
    const banned = newNode();
    expect((await register(good.signer, registration(good.id))).statusCode).toBe(200);
    expect((await register(banned.signer, registration(banned.id))).statusCode).toBe(200);
    await t!.coordinator.ctx.store.setOperatorStatus(banned.id, "banned", new Date(t!.clock.now()));
    const { createCoordinator } = await import("../src/coordinator.js");
    const { createLogger } = await import("../src/logger.js");
    // The first process is gone (it would give its replica lease up as it exits): the restart takes the same id at once.
    await t!.coordinator.replica.release();
    const restarted = await createCoordinator(t!.config, { clock: t!.clock, logger: createLogger("silent"), store: t!.coordinator.ctx.store });
    expect(restarted.ctx.registry.get(good.id)).toBeDefined();
    expect(restarted.ctx.registry.get(banned.id)).toBeUndefined();
  });
});
