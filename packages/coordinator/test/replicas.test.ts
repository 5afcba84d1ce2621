/**
 * Two coordinator replicas in this process on one PostgreSQL schema (issue 12 §2, the part that needs no bus): each
 * owns its jobs, a restart of one never ends the other's, a replica whose lease lapsed has its jobs ended by a live
 * one without its late completion overwriting that, and a signed node request is accepted once across both.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { SESSION_PATH, SseDecoder, signRequest } from "@tessera/protocol";
import { createCoordinator, type Coordinator } from "../src/coordinator.js";
import { ManualClock } from "../src/clock.js";
import { loadCoordinatorConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { generateApiToken, hashApiToken } from "../src/api-keys.js";
import { REPLICA_LEASE_MS } from "../src/replicas/replica-lease.js";
import { embeddingReplicaOf } from "../src/payments/job-billing.js";
import { holdEscrow, topUp } from "../src/payments/ledger-rules.js";
import { openStore } from "../src/store/index.js";
import { describeWithPostgres, dropSchema, POSTGRES_URL, probePostgres, randomSchema } from "../src/store/postgres-test-support.js";
import { newNode, registration } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";
import { until } from "./dialect-coordinator.js";

interface Replica {
  coordinator: Coordinator;
  clock: ManualClock;
  baseUrl: string;
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function replica(schema: string, replicaId: string, clock = new ManualClock(Date.now())): Promise<Replica> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-${replicaId}-`));
  const config = loadCoordinatorConfig({ dataDir: dir, port: "0", admission: "open", replicaId }, {});
  const store = await openStore({ postgresUrl: POSTGRES_URL, schema, keyDir: join(dir, "content-keys") });
  const coordinator = await createCoordinator(config, { clock, logger: createLogger("silent"), store });
  await coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(coordinator.app.server.address() as { port: number }).port}`;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await coordinator.close();
      rmSync(dir, { recursive: true, force: true });
    })());
  cleanups.push(close);
  return { coordinator, clock, baseUrl, close };
}

async function sharedSchema(): Promise<string> {
  const schema = randomSchema();
  cleanups.push(() => dropSchema(schema));
  return schema;
}

/** A node registered and connected to `on`, whose jobs wait until the test lets them finish. */
async function nodeOn(on: Replica) {
  const n = newNode();
  const now = () => Math.floor(on.clock.now() / 1000);
  const body = JSON.stringify(registration(n.id));
  const res = await on.coordinator.app.inject({
    method: "POST",
    url: "/api/v1/nodes/register",
    headers: { ...signRequest(n.signer, { method: "POST", path: "/api/v1/nodes/register", body }, { nowSeconds: now() }), "content-type": "application/json" },
    payload: body,
  });
  expect(res.statusCode).toBe(200);
  const node = new ScriptedNode(on.baseUrl, n.signer, now);
  node.onAssign = (job, self) => {
    self.accept(job.job_id);
    self.stream(job.job_id, [{ type: "text-delta", text: "Hello" }]);
  };
  await node.connect();
  cleanups.push(() => node.close());
  return { node, n, finish: (jobId: string) => node.stream(jobId, [{ type: "text-delta", text: " world" }, { type: "usage", prompt_tokens: 3, completion_tokens: 2 }, { type: "finish", reason: "stop" }]) };
}

/** Starts a streaming job on `on` and returns its id once a node holds it, and the whole stream once it ends. */
async function startJob(on: Replica, node: ScriptedNode) {
  const token = generateApiToken();
  await on.coordinator.ctx.store.createApiKey({ id: `key-${token.slice(-8)}`, name: `client-${token.slice(-8)}`, tokenSha256: hashApiToken(token), rateLimitPerMinute: 1000, createdAt: new Date(on.clock.now()) });
  const stream = fetch(`${on.baseUrl}/api/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true }),
  }).then(async (res) => new SseDecoder().push(await res.text()).map((e) => e.data));
  const jobId = await until(async () => node.assignments.at(-1)?.job_id);
  return { jobId, stream };
}

describeWithPostgres("coordinator replicas on one PostgreSQL database", await probePostgres(), () => {
  it("restarting B while A runs a job: A's job completes normally, with no error (the issue's completed-with-timeout row)", async () => {
    const schema = await sharedSchema();
    const a = await replica(schema, "r-a");
    let b = await replica(schema, "r-b");
    const { node, finish } = await nodeOn(a);
    const { jobId, stream } = await startJob(a, node);
    await until(async () => ((await a.coordinator.ctx.store.getJob(jobId))?.status === "processing" ? true : undefined));
    expect((await a.coordinator.ctx.store.getJob(jobId))?.replicaId).toBe("r-a");

    await b.close();
    b = await replica(schema, "r-b");
    // B's start-up recovery and its sweep leave A's running job alone: A's lease is live.
    expect(await b.coordinator.replica.sweepDeadReplicas()).toEqual([]);
    expect((await b.coordinator.ctx.store.getJob(jobId))?.status).toBe("processing");

    finish(jobId);
    const events = await stream;
    expect(events.at(-1)).toBe("[DONE]");
    const row = await until(async () => {
      // Read through A: the job's content is sealed under A's content keys (B holds its own).
      const r = await a.coordinator.ctx.store.getJob(jobId);
      return r?.status === "completed" ? r : undefined;
    });
    expect(row).toMatchObject({ status: "completed", error: null, errorMessage: null, content: "Hello world", replicaId: "r-a" });
    expect(await b.coordinator.ctx.store.listReplicaLeases()).toEqual([
      expect.objectContaining({ id: "r-a", instance: a.coordinator.replica.instance }),
      expect.objectContaining({ id: "r-b", instance: b.coordinator.replica.instance }),
    ]);
  });

  it("a replica whose lease lapsed has its job ended by a live one; its late completion leaves that record whole", async () => {
    const schema = await sharedSchema();
    const a = await replica(schema, "r-a");
    const { node, finish } = await nodeOn(a);
    const { jobId, stream } = await startJob(a, node);
    await until(async () => ((await a.coordinator.ctx.store.getJob(jobId))?.status === "processing" ? true : undefined));
    // B's clock is past A's lease: to B, A stopped renewing.
    const b = await replica(schema, "r-b", new ManualClock(a.clock.now() + REPLICA_LEASE_MS + 1));
    expect(await b.coordinator.replica.sweepDeadReplicas()).toEqual([jobId]);
    finish(jobId);
    const events = await stream;
    const record = async () => (await b.coordinator.ctx.store.getJob(jobId))!;
    // A learns at its first write that the record is no longer its own; whatever its client saw, the row stays B's.
    await until(async () => ((await a.coordinator.ctx.metrics.jobsEndedElsewhere.get()).values[0]?.value === 1 ? true : undefined));
    await a.coordinator.ctx.jobs.get(jobId)?.persisted;
    expect(await record()).toMatchObject({ status: "failed", error: "timeout", content: null, replicaId: "r-a" });
    expect(events.length).toBeGreaterThan(0);
    // Nothing of the job's money is left held: B refunded the escrow when it ended the job, A settled nothing.
    await until(async () => ((await b.coordinator.ctx.store.openEscrows({ jobId, limit: 1 })).length === 0 ? true : undefined));
    expect(await b.coordinator.ctx.store.listReceipts({ jobId, limit: 10 })).toEqual([]);
  });

  it("a job another replica ended before its node accepted it fails here with conflict; the record stays as that replica left it", async () => {
    const schema = await sharedSchema();
    const a = await replica(schema, "r-a");
    const { node } = await nodeOn(a);
    node.onAssign = () => undefined; // holds the assignment without accepting: the job is still `pending`
    const { jobId, stream } = await startJob(a, node);
    const b = await replica(schema, "r-b", new ManualClock(a.clock.now() + REPLICA_LEASE_MS + 1));
    expect(await b.coordinator.replica.sweepDeadReplicas()).toEqual([jobId]);
    node.accept(jobId);
    const events = await stream;
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: "conflict" });
    await until(async () => (node.cancels.includes(jobId) ? true : undefined));
    await a.coordinator.ctx.jobs.get(jobId)?.persisted;
    expect(await a.coordinator.ctx.store.getJob(jobId)).toMatchObject({ status: "failed", error: "timeout", replicaId: "r-a" });
    expect((await a.coordinator.ctx.metrics.jobsEndedElsewhere.get()).values[0]?.value).toBe(1);
  });

  it("a replica's start refunds its own and dead replicas' embedding escrows, never one a live replica still holds", async () => {
    const schema = await sharedSchema();
    const a = await replica(schema, "r-a");
    const store = a.coordinator.ctx.store;
    const at = new Date(a.clock.now());
    await store.postTransaction(topUp("owner-e", 3_000, "test", at));
    for (const id of ["emb-r-a_AAAAAAAAAAAAAAAA", "emb-r-gone_BBBBBBBBBBBBBBBB", "emb-r-b_CCCCCCCCCCCCCCCC", "emb-0b7d6c1e-legacy"]) {
      await store.postTransaction(holdEscrow(id, "owner-e", 500, at));
    }
    // B starts: A is live (its request stays held), r-gone never held a lease, r-b is B itself, the legacy id names no one.
    await replica(schema, "r-b", a.clock);
    expect((await store.openEscrows({ limit: 10 })).map((e) => e.jobId)).toEqual(["emb-r-a_AAAAAAAAAAAAAAAA"]);
    expect(embeddingReplicaOf("emb-r-a_AAAAAAAAAAAAAAAA")).toBe("r-a");
    expect(embeddingReplicaOf("emb-0b7d6c1e-legacy")).toBeUndefined();
  });

  it("a signed node request is accepted once across replicas: replayed to the other it is refused (replayed_nonce)", async () => {
    const schema = await sharedSchema();
    const a = await replica(schema, "r-a");
    const b = await replica(schema, "r-b", a.clock);
    const n = newNode();
    const body = JSON.stringify(registration(n.id));
    const headers = { ...signRequest(n.signer, { method: "POST", path: "/api/v1/nodes/register", body }, { nowSeconds: Math.floor(a.clock.now() / 1000) }), "content-type": "application/json" };
    const send = (to: Replica) => to.coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", headers, payload: body });
    expect((await send(a)).statusCode).toBe(200);
    const replayed = await send(b);
    expect(replayed.statusCode).toBe(401);
    expect(replayed.json()).toEqual({ error: "unauthorized", error_message: "nonce was already used (replayed request)" });
    expect(b.coordinator.ctx.registry.get(n.id)).toBeUndefined();
    // The same node signing afresh is welcome on B.
    const fresh = JSON.stringify(registration(n.id));
    const freshHeaders = { ...signRequest(n.signer, { method: "POST", path: "/api/v1/nodes/register", body: fresh }, { nowSeconds: Math.floor(b.clock.now() / 1000) }), "content-type": "application/json" };
    expect((await b.coordinator.app.inject({ method: "POST", url: "/api/v1/nodes/register", headers: freshHeaders, payload: fresh })).statusCode).toBe(200);

    // A session upgrade captured on A cannot open a session on B.
    const upgrade = signRequest(n.signer, { method: "GET", path: SESSION_PATH }, { nowSeconds: Math.floor(a.clock.now() / 1000) });
    const open = (to: Replica) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(to.baseUrl.replace(/^http/, "ws") + SESSION_PATH, { headers: upgrade });
        ws.once("open", () => {
          ws.close();
          resolve(101);
        });
        ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        ws.once("error", reject);
      });
    expect(await open(a)).toBe(101);
    expect(await open(b)).toBe(401);
  });

  it("a second process with the same replica id as a live one is refused with conflict, and leaves the live one's jobs alone", async () => {
    const schema = await sharedSchema();
    const a = await replica(schema, "r-a");
    const { node, finish } = await nodeOn(a);
    const { jobId, stream } = await startJob(a, node);
    // The impostor watches the lease on its own (frozen) clock; A renews meanwhile, as a live replica does.
    const clock = new ManualClock(a.clock.now());
    const dir = mkdtempSync(join(tmpdir(), "tessera-impostor-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const store = await openStore({ postgresUrl: POSTGRES_URL, schema });
    const config = loadCoordinatorConfig({ dataDir: dir, port: "0", replicaId: "r-a" }, {});
    let settled = false;
    const outcome = createCoordinator(config, { clock, logger: createLogger("silent"), store }).then(
      (c) => c,
      (err: unknown) => err,
    );
    void outcome.finally(() => (settled = true));
    while (!settled) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      a.clock.advance(1_000);
      await a.coordinator.replica.renew();
    }
    expect(await outcome).toMatchObject({ code: "conflict", message: expect.stringContaining('replica id "r-a" is held by a live coordinator') });
    await store.close();
    expect((await a.coordinator.ctx.store.getJob(jobId))?.status).toBe("processing");
    finish(jobId);
    await stream;
    await a.coordinator.ctx.jobs.get(jobId)?.persisted;
    expect(await a.coordinator.ctx.store.getJob(jobId)).toMatchObject({ status: "completed", error: null });
  }, 20_000);
});

describe("replicas on SQLite", () => {
  it("keeps the in-process nonce cache as the only replay check, and still owns its jobs under its replica id", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-sqlite-replica-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const coordinator = await createCoordinator(loadCoordinatorConfig({ dataDir: dir, port: "0" }, {}), { clock: new ManualClock(Date.now()), logger: createLogger("silent") });
    cleanups.push(() => coordinator.close());
    expect(coordinator.ctx.nodeAuth.shared).toBeUndefined();
    expect(coordinator.replica.id).toMatch(/^r-[0-9a-f]{10}$/);
    expect(await coordinator.ctx.store.listReplicaLeases()).toEqual([expect.objectContaining({ id: coordinator.replica.id })]);
  });
});
