import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { signRequest } from "@tessera/protocol";
import { SILENCE_PROBE_GRACE_MS } from "../src/registry.js";
import { newNode, registration, scriptedNetwork, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import type { ScriptedNode } from "./scripted-node.js";

async function waitUntil(predicate: () => boolean): Promise<void> {
  for (let i = 0; !predicate(); i++) {
    if (i > 2_000) throw new Error("condition never held");
    await new Promise((r) => setTimeout(r, 5));
  }
}
import vectors from "../../protocol/test-vectors.json" with { type: "json" };

let t: TestCoordinator;
beforeEach(async () => {
  t = await testCoordinator();
});
afterEach(async () => {
  await t.close();
});

describe("node endpoints", () => {
  it("answers /healthz", async () => {
    const res = await t.coordinator.app.inject({ method: "GET", url: "/healthz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ok" });
  });

  it("registers a signed node and reports it online", async () => {
    const node = newNode();
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ node_id: node.id, status: "online" });
    const status = await t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${node.id}/status` });
    expect(status.json()).toMatchObject({ status: "online", last_seen_at: new Date(t.clock.now()).toISOString() });
    expect((await t.coordinator.ctx.store.getNode(node.id))?.models.map((m) => m.id)).toEqual(["tiny"]);
  });

  describe("rejects every forged or replayed request with 401 and stores nothing", () => {
    const cases: Array<[string, (node: ReturnType<typeof newNode>, other: ReturnType<typeof newNode>) => Promise<{ statusCode: number; json(): unknown }>]> = [
      ["unsigned", (node) => t.coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", payload: registration(node.id) })],
      ["stale timestamp", (node) => signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { nowSeconds: Math.floor(t.clock.now() / 1000) - 31 })],
      ["future timestamp", (node) => signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { nowSeconds: Math.floor(t.clock.now() / 1000) + 31 })],
      ["tampered body", (node) => signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { signAs: { body: JSON.stringify(registration(node.id, ["other"])) } })],
      ["method swapped", (node) => signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { signAs: { method: "PUT" } })],
      ["path swapped", (node) => signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { signAs: { path: "/api/v1/nodes/heartbeat" } })],
      ["wrong key (signed by another node)", (node, other) => signedInject(t, other.signer, "POST", "/api/v1/nodes/register", registration(node.id))],
      [
        "key header swapped",
        (node, other) => {
          const body = JSON.stringify(registration(node.id));
          const headers = signRequest(node.signer, { method: "POST", path: "/api/v1/nodes/register", body }, { nowSeconds: Math.floor(t.clock.now() / 1000) });
          return t.coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", headers: { ...headers, "x-tessera-key": other.id, "content-type": "application/json" }, payload: body });
        },
      ],
      ["malformed header", (node) => t.coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", headers: { "x-tessera-auth": "v1.zz.yy.1", "x-tessera-key": node.id, "content-type": "application/json" }, payload: registration(node.id) })],
    ];
    for (const [name, send] of cases) {
      it(name, async () => {
        const node = newNode();
        const res = await send(node, newNode());
        expect(res.statusCode).toBe(401);
        expect(res.json()).toMatchObject({ error: "unauthorized" });
        expect(await t.coordinator.ctx.store.getNode(node.id)).toBeUndefined();
      });
    }

    it("replayed nonce", async () => {
      const node = newNode();
      const nonce = "00112233445566778899aabbccddeeff";
      const first = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { nonce });
      expect(first.statusCode).toBe(200);
      const again = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id), { nonce });
      expect(again.statusCode).toBe(401);
      expect(again.json()).toMatchObject({ error: "unauthorized", error_message: expect.stringContaining("nonce") });
    });
  });

  it("accepts the committed auth test vectors (signature checked, then the body)", async () => {
    const v = vectors.auth[0]!;
    t.clock.advance(v.timestamp * 1000 - t.clock.now());
    const res = await t.coordinator.app.inject({
      method: "POST",
      url: v.path,
      headers: { "x-tessera-auth": v.header, "x-tessera-key": vectors.public_key_hex, "content-type": "application/json" },
      payload: v.body,
    });
    // The vector's body is not a full registration: a 400 (not 401) shows the signature was accepted.
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe("bad_request");
  });

  it("refuses a registration whose public_key is not the signer's", async () => {
    const node = newNode();
    const other = newNode();
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(other.id));
    expect(res.statusCode).toBe(401);
    expect(await t.coordinator.ctx.store.getNode(other.id)).toBeUndefined();
  });

  it("rejects bad registration and heartbeat bodies with bad_request and stores nothing", async () => {
    const node = newNode();
    for (const body of [{}, { ...registration(node.id), max_concurrency: 0 }, { ...registration(node.id), extra: 1 }, { ...registration(node.id), running_commands: "c1" }, { ...registration(node.id), running_commands: [""] }, "not json"]) {
      const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", body);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: "bad_request" });
    }
    expect(await t.coordinator.ctx.store.getNode(node.id)).toBeUndefined();
    const hb = await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", { type: "heartbeat", gpus: "many" });
    expect(hb.statusCode).toBe(400);
  });

  it("refuses heartbeats from unregistered nodes", async () => {
    const node = newNode();
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", {
      type: "heartbeat", gpus: [], loaded_models: [], active_jobs: 0, max_concurrency: 1, draining: false,
    });
    expect(res.statusCode).toBe(401);
  });

  it("marks a silent node offline at 90 s, not before (moved clock, no sleeping)", async () => {
    const node = newNode();
    await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
    const status = async () => (await t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${node.id}/status` })).json();
    t.clock.advance(89_000);
    t.coordinator.tick();
    expect(await status()).toMatchObject({ status: "online" });
    const hb = await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", {
      type: "heartbeat", gpus: [], loaded_models: ["tiny"], active_jobs: 0, max_concurrency: 2, draining: false,
    });
    expect(hb.statusCode).toBe(200);
    t.clock.advance(89_999);
    t.coordinator.tick();
    expect(await status()).toMatchObject({ status: "online" });
    t.clock.advance(2);
    t.coordinator.tick();
    expect(await status()).toMatchObject({ status: "offline" });
  });

  it("asks a silent node with a session before marking it: one that answers the ping stays online, one that does not is marked after the grace", async () => {
    const net = await scriptedNetwork(2);
    try {
      const [alive, hung] = net.nodes as [ScriptedNode, ScriptedNode];
      hung.answerPings = false;
      const ids = [...net.t.coordinator.ctx.registry.all()].map((n) => n.id);
      const status = async (id: string) => (await net.t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${id}/status` })).json();
      const pings = () => net.t.coordinator.ctx.registry.all();
      // Both stop heartbeating; past the threshold the sweep pings both instead of marking them.
      net.t.clock.advance(net.t.config.offlineAfterS * 1000 + 1);
      net.t.coordinator.tick();
      for (const node of pings()) expect(node.probedAt).toBe(net.t.clock.now());
      for (const id of ids) expect(await status(id)).toMatchObject({ status: "online" });
      // The live one answers (any message from it counts); the hung one does not.
      await waitUntil(() => [...pings()].some((n) => n.probedAt === undefined));
      net.t.clock.advance(SILENCE_PROBE_GRACE_MS - 1);
      net.t.coordinator.tick();
      for (const id of ids) expect(await status(id)).toMatchObject({ status: "online" });
      net.t.clock.advance(1);
      net.t.coordinator.tick();
      const [first, second] = ids as [string, string];
      const hungId = net.t.coordinator.ctx.registry.get(first)!.probedAt === undefined ? second : first;
      const aliveId = hungId === first ? second : first;
      expect(await status(hungId)).toMatchObject({ status: "offline" });
      expect(await status(aliveId)).toMatchObject({ status: "online" });
      // Silent again past the threshold and asked again: the live node keeps answering.
      net.t.clock.advance(net.t.config.offlineAfterS * 1000 + 1);
      net.t.coordinator.tick();
      await waitUntil(() => net.t.coordinator.ctx.registry.get(aliveId)!.probedAt === undefined);
      net.t.clock.advance(SILENCE_PROBE_GRACE_MS);
      net.t.coordinator.tick();
      expect(await status(aliveId)).toMatchObject({ status: "online" });
      expect(alive.answerPings && !hung.answerPings).toBe(true);
    } finally {
      await net.close();
    }
  });

  it("answers bad and unknown node ids on the status endpoint", async () => {
    expect((await t.coordinator.app.inject({ method: "GET", url: "/api/v1/nodes/xyz/status" })).json()).toMatchObject({ error: "bad_request" });
    const res = await t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${"a".repeat(64)}/status` });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: "not_found" });
  });
});
