import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CoordinatorMessage, createOperatorToken, type NodeCommandView } from "@tessera/protocol";
import type { NodeSession } from "../src/workers/node-session.js";
import { SessionWorker } from "../src/sessions/session-worker.js";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";

let t: TestCoordinator;
beforeEach(async () => {
  t = await testCoordinator();
});
afterEach(async () => {
  await t.close();
});

async function registered() {
  const node = newNode();
  const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
  expect(res.statusCode).toBe(200);
  return node;
}

const nowS = () => Math.floor(t.clock.now() / 1000);

describe("node command queue", () => {
  it("the node's own signature queues a command; GET shows it; the heartbeat answer repeats it until the node reports", async () => {
    const node = await registered();
    const res = await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { type: "model_install", model: "qwen2.5:0.5b" });
    expect(res.statusCode).toBe(201);
    const created = res.json() as NodeCommandView;
    expect(created).toMatchObject({ node_id: node.id, type: "model_install", model: "qwen2.5:0.5b", status: "queued", progress: null, error: null });
    expect(created.issued_at).toBe(new Date(t.clock.now()).toISOString());

    const hb = { type: "heartbeat", gpus: [], loaded_models: [], active_jobs: 0, max_concurrency: 2 };
    const ack = await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", hb);
    expect(ack.json().commands).toEqual([{ id: created.id, type: "model_install", model: "qwen2.5:0.5b", issued_at: created.issued_at }]);

    const report = (body: unknown) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands/${created.id}/report`, body);
    const running = await report({ status: "running", progress: 0.5, detail: "pulling abc", completed_bytes: 50, total_bytes: 100 });
    expect(running.json()).toMatchObject({ status: "running", progress: 0.5, detail: "pulling abc", completed_bytes: 50, total_bytes: 100 });
    expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/heartbeat", hb)).json().commands).toBeUndefined();

    t.clock.advance(2000);
    expect((await report({ status: "succeeded" })).json()).toMatchObject({ status: "succeeded", progress: 1 });
    const list = await signedInject(t, node.signer, "GET", `/api/v1/nodes/${node.id}/commands`);
    expect(list.statusCode).toBe(200);
    const [only] = (list.json() as { commands: NodeCommandView[] }).commands;
    expect(only).toMatchObject({ id: created.id, status: "succeeded", progress: 1 });
    expect(only!.completed_bytes).toBeUndefined();

    const again = await report({ status: "failed", error: "internal_error", error_message: "late" });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: "conflict" });
  });

  it("pushes the command down the node's open session at once", async () => {
    const node = await registered();
    const sent: CoordinatorMessage[] = [];
    const session: NodeSession = { nodeId: node.id, send: (m) => sent.push(m), sendBinary() {}, rttMs: () => undefined, close() {} };
    t.coordinator.ctx.registry.attach(node.id, new SessionWorker(session), session);
    const res = await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { type: "model_remove", model: "old:1b" });
    const id = (res.json() as NodeCommandView).id;
    expect(sent.filter((m) => m.type === "node.command")).toEqual([
      { type: "node.command", command: { id, type: "model_remove", model: "old:1b", issued_at: new Date(t.clock.now()).toISOString() } },
    ]);
  });

  it("an operator token signed by the node key works for POST and GET; a failed report keeps its error", async () => {
    const node = await registered();
    const token = createOperatorToken(node.signer, { nowSeconds: nowS(), ttlSeconds: 600 });
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const res = await t.coordinator.app.inject({ method: "POST", url: `/api/v1/nodes/${node.id}/commands`, headers, payload: { type: "model_install", model: "nope:1b" } });
    expect(res.statusCode).toBe(201);
    const id = (res.json() as NodeCommandView).id;
    await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands/${id}/report`, { status: "failed", error: "model_not_found", error_message: "no such model" });
    const list = await t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${node.id}/commands`, headers: { authorization: `Bearer ${token}` } });
    expect(list.json().commands[0]).toMatchObject({ status: "failed", error: "model_not_found: no such model" });
  });

  it("a re-registration fails the running commands the daemon no longer lists (it restarted) and keeps the rest", async () => {
    const node = await registered();
    const queue = async (model: string) =>
      ((await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { type: "model_install", model })).json() as NodeCommandView).id;
    const [cutOff, stillRunning, waiting] = [await queue("a:1b"), await queue("b:1b"), await queue("c:1b")];
    for (const id of [cutOff, stillRunning]) {
      await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands/${id}/report`, { status: "running", progress: 0.3, detail: "pulling" });
    }
    const again = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", { ...registration(node.id), running_commands: [stillRunning] });
    expect(again.statusCode).toBe(200);
    const list = (await signedInject(t, node.signer, "GET", `/api/v1/nodes/${node.id}/commands`)).json() as { commands: NodeCommandView[] };
    const status = Object.fromEntries(list.commands.map((c) => [c.id, c]));
    expect(status[cutOff]).toMatchObject({ status: "failed", error: expect.stringMatching(/^node_disconnected: the node restarted/) });
    expect(status[cutOff]!.detail).toBeUndefined();
    expect(status[stillRunning]).toMatchObject({ status: "running", progress: 0.3, detail: "pulling" });
    expect(status[waiting]).toMatchObject({ status: "queued" });
    // The cut-off command is final: a late report from anyone is a conflict.
    const late = await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands/${cutOff}/report`, { status: "succeeded" });
    expect(late.statusCode).toBe(409);
    // A fresh daemon lists nothing: the other one is cut off too.
    await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
    expect((await t.coordinator.ctx.store.getNodeCommand(stillRunning))?.status).toBe("failed");
  });

  describe("bad input changes nothing", () => {
    const body = { type: "model_install", model: "qwen2.5:7b" };
    const cases: Array<[string, number, string, (node: ReturnType<typeof newNode>, other: ReturnType<typeof newNode>) => Promise<{ statusCode: number; json(): any }>]> = [
      ["no credentials", 401, "unauthorized", (node) => t.coordinator.app.inject({ method: "POST", url: `/api/v1/nodes/${node.id}/commands`, payload: body })],
      ["an ordinary API key", 403, "forbidden", (node) => t.coordinator.app.inject({ method: "POST", url: `/api/v1/nodes/${node.id}/commands`, headers: { authorization: `Bearer ${t.token}` }, payload: body })],
      ["signed by another node", 403, "forbidden", (node, other) => signedInject(t, other.signer, "POST", `/api/v1/nodes/${node.id}/commands`, body)],
      ["operator token of another node", 403, "forbidden", (node, other) => t.coordinator.app.inject({ method: "POST", url: `/api/v1/nodes/${node.id}/commands`, headers: { authorization: `Bearer ${createOperatorToken(other.signer, { nowSeconds: nowS() })}` }, payload: body })],
      ["expired operator token", 401, "unauthorized", (node) => t.coordinator.app.inject({ method: "POST", url: `/api/v1/nodes/${node.id}/commands`, headers: { authorization: `Bearer ${createOperatorToken(node.signer, { nowSeconds: nowS() - 7200, ttlSeconds: 3600 })}` }, payload: body })],
      ["forged operator token", 401, "unauthorized", (node, other) => {
        const real = createOperatorToken(other.signer, { nowSeconds: nowS() });
        const forged = real.replace(other.id, node.id);
        return t.coordinator.app.inject({ method: "POST", url: `/api/v1/nodes/${node.id}/commands`, headers: { authorization: `Bearer ${forged}` }, payload: body });
      }],
      ["stale signature", 401, "unauthorized", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, body, { nowSeconds: nowS() - 60 })],
      ["bad type", 400, "bad_request", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { type: "model_upgrade", model: "x" })],
      ["empty model name", 400, "bad_request", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { type: "model_install", model: "" })],
      ["model name with spaces", 400, "bad_request", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { type: "model_install", model: "rm -rf" })],
      ["extra field (issued_at is the server's)", 400, "bad_request", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, { ...body, issued_at: "2020-01-01T00:00:00Z" })],
      ["malformed node id", 400, "bad_request", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/not-a-key/commands`, body)],
      ["report signed by another node", 403, "forbidden", (node, other) => signedInject(t, other.signer, "POST", `/api/v1/nodes/${node.id}/commands/x/report`, { status: "running" })],
      ["report for an unknown command", 404, "not_found", (node) => signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands/ghost/report`, { status: "running" })],
      ["API key on GET", 403, "forbidden", (node) => t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${node.id}/commands`, headers: { authorization: `Bearer ${t.token}` } })],
    ];
    for (const [name, status, code, send] of cases) {
      it(name, async () => {
        const node = await registered();
        const res = await send(node, newNode());
        expect(res.statusCode).toBe(status);
        expect(res.json()).toMatchObject({ error: code });
        expect(await t.coordinator.ctx.store.listNodeCommands(node.id)).toEqual([]);
      });
    }

    it("unknown (unregistered) node: 404 for its own signature", async () => {
      const ghost = newNode();
      const res = await signedInject(t, ghost.signer, "POST", `/api/v1/nodes/${ghost.id}/commands`, body);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: "not_found" });
      const get = await signedInject(t, ghost.signer, "GET", `/api/v1/nodes/${ghost.id}/commands`);
      expect(get.statusCode).toBe(404);
    });

    it("a bad report body is refused and leaves the command queued", async () => {
      const node = await registered();
      const id = (await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands`, body)).json().id as string;
      const res = await signedInject(t, node.signer, "POST", `/api/v1/nodes/${node.id}/commands/${id}/report`, { status: "running", progress: 2 });
      expect(res.statusCode).toBe(400);
      expect((await t.coordinator.ctx.store.getNodeCommand(id))?.status).toBe("queued");
    });
  });
});
