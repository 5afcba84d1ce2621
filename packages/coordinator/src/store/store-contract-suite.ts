/**
 * The one behaviour suite every store dialect must pass. `sqlite-store.test.ts` and `postgres-store.test.ts` run it
 * against a fresh database each test. Times are built from a fixed base plus offsets: no wall clock is read.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TesseraError, type ChatMessage, type Sampling } from "@tessera/protocol";
import { MAX_KEY_TEXT } from "./codec.js";
import { storableText } from "./storable-text.js";
import type { NewJob, NewJoinToken, NodeRegistration, NodeStandingRecord, Store } from "./types.js";

export interface StoreHarness {
  store: Store;
  /** Closes `store` and opens the same database again (migrations run again). */
  reopen(): Promise<Store>;
  /** Closes whatever is open and deletes the database. */
  dispose(): Promise<void>;
}

const BASE = 1_700_000_000_000;
/** The instant `seconds` after the test's origin. */
const t = (seconds: number) => new Date(BASE + seconds * 1000);

const nodeId = (n: number) => n.toString(16).padStart(64, "0");
const sha = (c: string) => c.repeat(64);

function registration(n: number, overrides: Partial<NodeRegistration> = {}): NodeRegistration {
  return {
    id: nodeId(n),
    version: "0.1.0",
    hardware: { cpu_cores: 8, ram_mb: 32_768, gpus: [{ vendor: "nvidia", name: "RTX 4090", vram_mb: 24_564 }], tier: ">=24gb" },
    models: [{ id: "tiny-llama", backend: "embedded", size_bytes: 1234 }],
    maxConcurrency: 4,
    operatorId: nodeId(n),
    delegationExpiresAt: null,
    ...overrides,
  };
}

const messages: ChatMessage[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "héllo 👋" },
];
const sampling: Sampling = { max_tokens: 64, temperature: 0, top_p: 1, seed: 7 };

function job(id: string, overrides: Partial<NewJob> = {}): NewJob {
  return { id, ownerId: "owner-a", model: "tiny-llama", messages, promptSha256: sha("a"), sampling, createdAt: t(0), ...overrides };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TesseraError);
  expect((err as TesseraError).code).toBe(code);
}

export function defineStoreContract(label: string, openHarness: () => Promise<StoreHarness>): void {
  describe(`store on ${label}`, () => {
    let harness: StoreHarness;
    let store: Store;

    beforeEach(async () => {
      harness = await openHarness();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.dispose();
    });

    describe("nodes", () => {
      it("registers a node as offline and reads it back with its announcement", async () => {
        const created = await store.upsertNode(registration(1), t(0));
        expect(created).toMatchObject({ id: nodeId(1), status: "offline", maxConcurrency: 4, lastSeenAt: null });
        const node = await store.getNode(nodeId(1));
        expect(node?.hardware).toEqual(registration(1).hardware);
        expect(node?.models).toEqual(registration(1).models);
        expect(node?.registeredAt).toEqual(t(0));
        expect(await store.getNode(nodeId(99))).toBeUndefined();
      });

      it("re-registration refreshes the announcement but keeps status and first registration time", async () => {
        await store.upsertNode(registration(1), t(0));
        await store.setNodeStatus(nodeId(1), "online", t(1));
        const again = await store.upsertNode(
          registration(1, { version: "0.2.0", models: [{ id: "other", backend: "ollama" }], maxConcurrency: 8 }),
          t(5),
        );
        expect(again).toMatchObject({ version: "0.2.0", maxConcurrency: 8, status: "online" });
        expect(again.models).toEqual([{ id: "other", backend: "ollama" }]);
        expect(again.registeredAt).toEqual(t(0));
        expect(again.updatedAt).toEqual(t(5));
      });

      it("a heartbeat records load and marks the node online; an unknown node is refused", async () => {
        expect(await store.recordHeartbeat(nodeId(7), hb(), t(0))).toBe(false);
        await store.upsertNode(registration(1), t(0));
        expect(await store.recordHeartbeat(nodeId(1), hb({ activeJobs: 2, draining: true }), t(10))).toBe(true);
        const node = await store.getNode(nodeId(1));
        expect(node).toMatchObject({ status: "online", activeJobs: 2, draining: true, maxConcurrency: 6 });
        expect(node?.gpus).toEqual(hb().gpus);
        expect(node?.loadedModels).toEqual(["tiny-llama"]);
        expect(node?.lastHeartbeatAt).toEqual(t(10));
        expect(node?.lastSeenAt).toEqual(t(10));
        expect(node?.statusChangedAt).toEqual(t(10));
        // served list untouched when the heartbeat carries none
        expect(node?.models).toEqual(registration(1).models);

        await store.recordHeartbeat(nodeId(1), hb({ models: [{ id: "qwen2.5:7b", backend: "ollama" }] }), t(40));
        const later = await store.getNode(nodeId(1));
        expect(later?.models).toEqual([{ id: "qwen2.5:7b", backend: "ollama" }]);
        expect(later?.draining).toBe(false);
        // still online since t(10): the status change time does not move with each heartbeat
        expect(later?.statusChangedAt).toEqual(t(10));
        expect(later?.lastSeenAt).toEqual(t(40));
      });

      it("sets status explicitly and lists nodes by status", async () => {
        for (const n of [1, 2, 3]) await store.upsertNode(registration(n), t(0));
        expect(await store.setNodeStatus(nodeId(2), "online", t(3))).toBe(true);
        expect(await store.setNodeStatus(nodeId(3), "online", t(3))).toBe(true);
        expect(await store.setNodeStatus(nodeId(3), "offline", t(4))).toBe(true);
        expect(await store.setNodeStatus(nodeId(9), "online", t(4))).toBe(false);
        expect((await store.listNodes({ status: "online" })).map((n) => n.id)).toEqual([nodeId(2)]);
        expect((await store.listNodes({ status: "offline" })).map((n) => n.id)).toEqual([nodeId(1), nodeId(3)]);
        expect(await store.listNodes()).toHaveLength(3);
        const three = await store.getNode(nodeId(3));
        expect(three?.statusChangedAt).toEqual(t(4));
      });
    });

    describe("jobs", () => {
      it("stores a job and reads back every field, dates to the millisecond", async () => {
        const createdAt = new Date(BASE + 123);
        await store.insertJob(job("j1", { createdAt, contentExpiresAt: t(3600) }));
        const got = await store.getJob("j1");
        expect(got).toEqual({
          id: "j1",
          ownerId: "owner-a",
          model: "tiny-llama",
          status: "pending",
          messages,
          promptSha256: sha("a"),
          sampling,
          nodeId: null,
          content: null,
          outputSha256: null,
          promptTokens: null,
          completionTokens: null,
          error: null,
          errorMessage: null,
          createdAt,
          startedAt: null,
          completedAt: null,
          latencyMs: null,
          contentExpiresAt: t(3600),
          replicaId: null,
        });
        expect(await store.getJob("nope")).toBeUndefined();
      });

      it("refuses a duplicate job id with conflict and keeps the first", async () => {
        await store.insertJob(job("j1"));
        await expectCode(store.insertJob(job("j1", { ownerId: "owner-b" })), "conflict");
        expect((await store.getJob("j1"))?.ownerId).toBe("owner-a");
      });

      it("refuses an invalid date with bad_request", async () => {
        await expectCode(store.insertJob(job("j1", { createdAt: new Date(Number.NaN) })), "bad_request");
        expect(await store.getJob("j1")).toBeUndefined();
      });

      it("walks a job through processing to completed with a patch that changes only what it names", async () => {
        await store.insertJob(job("j1"));
        expect(
          await store.updateJob("j1", { status: "processing", nodeId: nodeId(1), startedAt: t(1) }, { ifStatus: ["pending"] }),
        ).toBe(true);
        const done = {
          status: "completed" as const,
          content: "Hi there.",
          outputSha256: sha("b"),
          promptTokens: 12,
          completionTokens: 3,
          completedAt: t(2),
          latencyMs: 1500.5,
          contentExpiresAt: t(3602),
        };
        expect(await store.updateJob("j1", done, { ifStatus: ["processing"] })).toBe(true);
        const got = await store.getJob("j1");
        expect(got).toMatchObject({ ...done, nodeId: nodeId(1), startedAt: t(1), messages, promptSha256: sha("a") });
        // the timeout sweep may not overwrite a finished job
        expect(await store.updateJob("j1", { status: "failed", error: "timeout" }, { ifStatus: ["pending", "processing"] })).toBe(false);
        expect((await store.getJob("j1"))?.status).toBe("completed");
        // null clears a field
        expect(await store.updateJob("j1", { nodeId: null })).toBe(true);
        expect((await store.getJob("j1"))?.nodeId).toBeNull();
      });

      it("seals a completion's content under the key of the expiry the caller created the row with (sealedAs), and still only while the row has that expiry", async () => {
        const createdAt = new Date(BASE + 5);
        await store.insertJob(job("j1", { createdAt, contentExpiresAt: t(3600) }));
        const sealedAs = { createdAt, contentExpiresAt: t(3600) };
        expect(await store.updateJob("j1", { status: "completed", content: "sealed without a read" }, { ifStatus: ["pending"], sealedAs })).toBe(true);
        expect(await store.getJob("j1")).toMatchObject({ status: "completed", content: "sealed without a read", messages, contentExpiresAt: t(3600) });
        // The caller's idea of the row is stale (its expiry moved since): the careful path reads the row and seals
        // under the key of the expiry it really has, so the content stays readable.
        await store.insertJob(job("j2", { createdAt, contentExpiresAt: t(3600) }));
        expect(await store.updateJob("j2", { contentExpiresAt: t(7200) })).toBe(true);
        expect(await store.updateJob("j2", { status: "completed", content: "resealed" }, { ifStatus: ["pending"], sealedAs })).toBe(true);
        expect(await store.getJob("j2")).toMatchObject({ status: "completed", content: "resealed", messages, contentExpiresAt: t(7200) });
        // A wrong creation time is caught the same way.
        await store.insertJob(job("j3", { createdAt, contentExpiresAt: t(3600) }));
        expect(await store.updateJob("j3", { content: "created elsewhere" }, { sealedAs: { createdAt: t(-86_400), contentExpiresAt: t(3600) } })).toBe(true);
        expect((await store.getJob("j3"))?.content).toBe("created elsewhere");
        // Conditions still hold: a finished job is not overwritten, a missing one is reported.
        expect(await store.updateJob("j1", { status: "failed", content: "late" }, { ifStatus: ["pending", "processing"], sealedAs })).toBe(false);
        expect((await store.getJob("j1"))?.content).toBe("sealed without a read");
        expect(await store.updateJob("nope", { content: "x" }, { sealedAs })).toBe(false);
        await expectCode(store.updateJob("j1", { content: "x" }, { sealedAs: { createdAt: new Date(Number.NaN), contentExpiresAt: null } }), "bad_request");
      });

      it("reports an unknown job and refuses an empty patch", async () => {
        expect(await store.updateJob("nope", { status: "failed" })).toBe(false);
        await store.insertJob(job("j1"));
        await expectCode(store.updateJob("j1", {}), "bad_request");
      });

      it("records a failure with its code and message", async () => {
        await store.insertJob(job("j1"));
        await store.updateJob("j1", { status: "failed", error: "node_disconnected", errorMessage: "node left", completedAt: t(3) });
        expect(await store.getJob("j1")).toMatchObject({ status: "failed", error: "node_disconnected", errorMessage: "node left" });
      });

      it("lists only the owner's jobs, newest first, with limit, status and since", async () => {
        for (let i = 0; i < 6; i++) await store.insertJob(job(`a${i}`, { createdAt: t(i * 10) }));
        await store.insertJob(job("b0", { ownerId: "owner-b", createdAt: t(100) }));
        await store.updateJob("a1", { status: "completed" });
        await store.updateJob("a4", { status: "completed" });

        const ids = async (...args: Parameters<Store["listJobs"]>) => (await store.listJobs(...args)).map((j) => j.id);
        expect(await ids("owner-a", { limit: 20 })).toEqual(["a5", "a4", "a3", "a2", "a1", "a0"]);
        expect(await ids("owner-a", { limit: 2 })).toEqual(["a5", "a4"]);
        expect(await ids("owner-a", { limit: 20, status: "completed" })).toEqual(["a4", "a1"]);
        expect(await ids("owner-a", { limit: 20, status: "failed" })).toEqual([]);
        // since is inclusive
        expect(await ids("owner-a", { limit: 20, since: t(30) })).toEqual(["a5", "a4", "a3"]);
        expect(await ids("owner-a", { limit: 20, since: t(30), status: "pending" })).toEqual(["a5", "a3"]);
        expect(await ids("owner-a", { limit: 1, since: t(11), status: "completed" })).toEqual(["a4"]);
        expect(await ids("owner-b", { limit: 20 })).toEqual(["b0"]);
        expect(await ids("owner-c", { limit: 20 })).toEqual([]);
      });

      it("orders jobs of the same millisecond stably and compares since numerically, not as text", async () => {
        await store.insertJob(job("x1", { createdAt: new Date(BASE) }));
        await store.insertJob(job("x2", { createdAt: new Date(BASE) }));
        // 9 ms vs 10 ms: a text comparison of "…9" and "…10" would get this wrong
        await store.insertJob(job("x3", { createdAt: new Date(BASE + 9) }));
        await store.insertJob(job("x4", { createdAt: new Date(BASE + 10) }));
        expect((await store.listJobs("owner-a", { limit: 10 })).map((j) => j.id)).toEqual(["x4", "x3", "x2", "x1"]);
        expect((await store.listJobs("owner-a", { limit: 10, since: new Date(BASE + 10) })).map((j) => j.id)).toEqual(["x4"]);
      });

      it("refuses a list limit outside 1..1000", async () => {
        await expectCode(store.listJobs("owner-a", { limit: 0 }), "bad_request");
        await expectCode(store.listJobs("owner-a", { limit: 1001 }), "bad_request");
        await expectCode(store.listJobs("owner-a", { limit: 1.5 }), "bad_request");
      });

      it("drops prompts and outputs of finished jobs once expired, keeping hashes and counts", async () => {
        const finish = { status: "completed" as const, content: "out", outputSha256: sha("b"), promptTokens: 5, completionTokens: 2 };
        await store.insertJob(job("expired", { contentExpiresAt: t(3600) }));
        await store.updateJob("expired", finish);
        await store.insertJob(job("failed", { contentExpiresAt: t(3600) }));
        await store.updateJob("failed", { status: "failed", error: "timeout" });
        await store.insertJob(job("fresh", { contentExpiresAt: t(7200) }));
        await store.updateJob("fresh", finish);
        await store.insertJob(job("running", { contentExpiresAt: t(10) }));
        await store.updateJob("running", { status: "processing" });
        await store.insertJob(job("no-expiry"));
        await store.updateJob("no-expiry", finish);

        expect(await store.expireJobContent(t(3599))).toBe(0);
        expect(await store.expireJobContent(t(3600))).toBe(2);
        const gone = await store.getJob("expired");
        expect(gone).toMatchObject({ messages: null, content: null, promptSha256: sha("a"), outputSha256: sha("b"), promptTokens: 5, completionTokens: 2, status: "completed" });
        expect((await store.getJob("failed"))?.messages).toBeNull();
        expect((await store.getJob("fresh"))?.content).toBe("out");
        // a running job keeps its prompt: failover may need it
        expect((await store.getJob("running"))?.messages).toEqual(messages);
        expect((await store.getJob("no-expiry"))?.messages).toEqual(messages);
        // idempotent
        expect(await store.expireJobContent(t(3600))).toBe(0);
        expect(await store.expireJobContent(t(7200))).toBe(1);
        expect((await store.getJob("fresh"))?.content).toBeNull();
      });

      it("fails the replica's own jobs (and unowned ones) pending or processing since before the cutoff with timeout", async () => {
        await store.insertJob(job("old-pending", { createdAt: t(0) }));
        await store.insertJob(job("old-processing", { createdAt: t(1) }));
        await store.updateJob("old-processing", { status: "processing" });
        await store.insertJob(job("old-done", { createdAt: t(0) }));
        await store.updateJob("old-done", { status: "completed", content: "x" });
        await store.insertJob(job("young", { createdAt: t(200), replicaId: "r-a" }));
        await store.insertJob(job("theirs", { createdAt: t(0), replicaId: "r-b" }));

        expect(await store.failOwnJobs("r-a", t(100), t(300))).toEqual(["old-pending", "old-processing"]);
        expect(await store.getJob("old-pending")).toMatchObject({ status: "failed", error: "timeout", completedAt: t(300) });
        expect((await store.getJob("old-pending"))?.errorMessage).toMatch(/time/);
        expect((await store.getJob("old-done"))?.status).toBe("completed");
        expect((await store.getJob("young"))?.status).toBe("pending");
        expect(await store.failOwnJobs("r-a", t(100), t(301), "custom")).toEqual([]);
        expect(await store.failOwnJobs("r-a", t(201), t(500), "5 minutes passed")).toEqual(["young"]);
        expect((await store.getJob("young"))?.errorMessage).toBe("5 minutes passed");
        // another replica's job is never touched
        expect(await store.getJob("theirs")).toMatchObject({ status: "pending", error: null, replicaId: "r-b" });
      });
    });

    describe("job segments", () => {
      it("numbers each job's segments in order and lists them", async () => {
        await store.insertJob(job("j1"));
        await store.insertJob(job("j2"));
        const first = await store.addJobSegment({ jobId: "j1", nodeId: nodeId(1), completionTokens: 20, startedAt: t(0), endedAt: t(2) });
        expect(first.seq).toBe(1);
        await store.addJobSegment({ jobId: "j2", nodeId: nodeId(3), completionTokens: 9, startedAt: t(0), endedAt: t(1) });
        const second = await store.addJobSegment({ jobId: "j1", nodeId: nodeId(2), completionTokens: 44, startedAt: t(3), endedAt: t(5) });
        expect(second.seq).toBe(2);
        expect(await store.listJobSegments("j1")).toEqual([
          { jobId: "j1", seq: 1, nodeId: nodeId(1), completionTokens: 20, startedAt: t(0), endedAt: t(2), resultCommitment: null, resultSignature: null },
          { jobId: "j1", seq: 2, nodeId: nodeId(2), completionTokens: 44, startedAt: t(3), endedAt: t(5), resultCommitment: null, resultSignature: null },
        ]);
        expect((await store.listJobSegments("j2")).map((s) => s.seq)).toEqual([1]);
        expect(await store.listJobSegments("none")).toEqual([]);
      });

      it("refuses a segment for an unknown job or with bad token counts", async () => {
        await expectCode(
          store.addJobSegment({ jobId: "ghost", nodeId: nodeId(1), completionTokens: 1, startedAt: t(0), endedAt: t(1) }),
          "not_found",
        );
        await store.insertJob(job("j1"));
        await expectCode(
          store.addJobSegment({ jobId: "j1", nodeId: nodeId(1), completionTokens: -1, startedAt: t(0), endedAt: t(1) }),
          "bad_request",
        );
        expect(await store.listJobSegments("j1")).toEqual([]);
      });

      it("keeps a segment's result commitment and signature, and refuses one without the other or malformed", async () => {
        await store.insertJob(job("j1"));
        const signed = { resultCommitment: "c".repeat(64), resultSignature: "d".repeat(128) };
        await store.addJobSegment({ jobId: "j1", nodeId: nodeId(1), completionTokens: 3, startedAt: t(0), endedAt: t(1), ...signed });
        expect((await store.listJobSegments("j1"))[0]).toMatchObject(signed);
        for (const bad of [{ resultCommitment: "c".repeat(64) }, { resultSignature: "d".repeat(128) }, { ...signed, resultCommitment: "C".repeat(64) }, { ...signed, resultSignature: "d" }]) {
          await expectCode(store.addJobSegment({ jobId: "j1", nodeId: nodeId(1), completionTokens: 3, startedAt: t(0), endedAt: t(1), ...bad }), "bad_request");
        }
        expect(await store.listJobSegments("j1")).toHaveLength(1);
      });
    });

    describe("API keys", () => {
      const key = (id: string, name: string, c: string) => ({ id, name, tokenSha256: sha(c), rateLimitPerMinute: 60, createdAt: t(Number.parseInt(c, 16)) });

      it("creates keys, finds them by token hash only, and lists them", async () => {
        const created = await store.createApiKey(key("k1", "laptop", "1"));
        expect(created).toEqual({ id: "k1", name: "laptop", tokenSha256: sha("1"), rateLimitPerMinute: 60, createdAt: t(1), lastUsedAt: null, revokedAt: null });
        await store.createApiKey(key("k2", "server", "2"));
        expect((await store.findApiKeyByHash(sha("2")))?.id).toBe("k2");
        expect(await store.findApiKeyByHash(sha("3"))).toBeUndefined();
        expect((await store.listApiKeys()).map((k) => k.name)).toEqual(["laptop", "server"]);
      });

      it("refuses a raw token, a duplicate active name and a duplicate token", async () => {
        await expectCode(store.createApiKey({ ...key("k1", "laptop", "1"), tokenSha256: "tsk_plaintext-token" }), "bad_request");
        await store.createApiKey(key("k1", "laptop", "1"));
        await expectCode(store.createApiKey(key("k2", "laptop", "2")), "conflict");
        await expectCode(store.createApiKey(key("k3", "other", "1")), "conflict");
        await expectCode(store.createApiKey(key("k4", "", "4")), "bad_request");
        expect(await store.listApiKeys()).toHaveLength(1);
      });

      it("revokes by name or id; a revoked key no longer authenticates and its name can be reused", async () => {
        await store.createApiKey(key("k1", "laptop", "1"));
        await store.createApiKey(key("k2", "server", "2"));
        expect(await store.revokeApiKey("laptop", t(50))).toBe(true);
        expect(await store.revokeApiKey("laptop", t(51))).toBe(false);
        expect(await store.revokeApiKey("k2", t(52))).toBe(true);
        expect(await store.revokeApiKey("unknown", t(53))).toBe(false);
        expect(await store.findApiKeyByHash(sha("1"))).toBeUndefined();
        expect(await store.findApiKeyByHash(sha("2"))).toBeUndefined();
        const listed = await store.listApiKeys();
        expect(listed.map((k) => k.revokedAt)).toEqual([t(50), t(52)]);
        await store.createApiKey(key("k3", "laptop", "3"));
        expect((await store.findApiKeyByHash(sha("3")))?.name).toBe("laptop");
      });

      it("records when a key was last used", async () => {
        await store.createApiKey(key("k1", "laptop", "1"));
        await store.touchApiKey("k1", t(99));
        expect((await store.findApiKeyByHash(sha("1")))?.lastUsedAt).toEqual(t(99));
      });
    });

    describe("operators and join tokens", () => {
      const operatorId = (n: number) => (0xa00 + n).toString(16).padStart(64, "0");
      const joinToken = (id: string, c: string, overrides: Partial<NewJoinToken> = {}): NewJoinToken => ({
        id,
        tokenSha256: sha(c),
        note: null,
        maxUses: 1,
        createdAt: t(0),
        expiresAt: t(3600),
        ...overrides,
      });

      it("keeps the first record of an operator, changes its status, and lists it with its node count", async () => {
        const first = await store.ensureOperator({ id: operatorId(1), status: "active", admittedVia: "token", joinTokenId: "jt1", createdAt: t(1) });
        expect(first).toEqual({ id: operatorId(1), status: "active", admittedVia: "token", joinTokenId: "jt1", createdAt: t(1), statusChangedAt: t(1), statusReason: null });
        // A racing second insert (another replica, a retry) changes nothing.
        expect(await store.ensureOperator({ id: operatorId(1), status: "pending", admittedVia: "approval", joinTokenId: null, createdAt: t(2) })).toEqual(first);
        await store.ensureOperator({ id: operatorId(2), status: "pending", admittedVia: "approval", joinTokenId: null, createdAt: t(3) });
        await store.upsertNode(registration(1, { operatorId: operatorId(1) }), t(4));
        await store.upsertNode(registration(2, { operatorId: operatorId(1) }), t(4));
        expect(await store.setOperatorStatus(operatorId(2), "banned", t(10), "garbage answers")).toBe(true);
        expect(await store.setOperatorStatus(operatorId(9), "banned", t(10))).toBe(false);
        const listed = await store.listOperators();
        expect(listed.map((o) => [o.id, o.status, o.nodes])).toEqual([[operatorId(1), "active", 2], [operatorId(2), "banned", 0]]);
        expect(listed[1]).toMatchObject({ statusChangedAt: t(10), statusReason: "garbage answers" });
        expect((await store.listOperatorsChangedSince(t(5))).map((o) => o.id)).toEqual([operatorId(2)]);
        expect((await store.getNode(nodeId(1)))?.operatorId).toBe(operatorId(1));
      });

      it("takes each use of a join token once, and never an expired, revoked or used-up one", async () => {
        await store.createJoinToken(joinToken("jt-two-uses", "1", { maxUses: 2 }));
        await store.createJoinToken(joinToken("jt-expired", "2", { expiresAt: t(10) }));
        await store.createJoinToken(joinToken("jt-revoked", "3"));
        expect((await store.useJoinToken(sha("1"), t(5)))?.uses).toBe(1);
        expect((await store.useJoinToken(sha("1"), t(6)))?.uses).toBe(2);
        expect(await store.useJoinToken(sha("1"), t(7))).toBeUndefined();
        expect(await store.useJoinToken(sha("2"), t(10))).toBeUndefined();
        expect(await store.revokeJoinToken("jt-rev", t(11))).toBe(true);
        expect(await store.revokeJoinToken("jt-rev", t(12))).toBe(false);
        expect(await store.useJoinToken(sha("3"), t(12))).toBeUndefined();
        expect(await store.useJoinToken(sha("9"), t(12))).toBeUndefined();
        const listed = await store.listJoinTokens();
        expect(listed.map((j) => [j.id, j.uses, j.revokedAt])).toEqual([["jt-expired", 0, null], ["jt-revoked", 0, t(11)], ["jt-two-uses", 2, null]]);
      });

      it("gives the last use of a join token to exactly one of many racing registrations", async () => {
        await store.createJoinToken(joinToken("jt-race", "4", { maxUses: 3 }));
        const results = await Promise.all(Array.from({ length: 12 }, () => store.useJoinToken(sha("4"), t(1))));
        expect(results.filter((r) => r !== undefined)).toHaveLength(3);
      });

      it("refuses a raw token, a duplicate, no uses, and an ambiguous or too short prefix to revoke", async () => {
        await expectCode(store.createJoinToken({ ...joinToken("jt1", "1"), tokenSha256: "tsjt_plaintext" }), "bad_request");
        await expectCode(store.createJoinToken(joinToken("jt1", "1", { maxUses: 0 })), "bad_request");
        await store.createJoinToken(joinToken("jt-aaaa-1", "1"));
        await store.createJoinToken(joinToken("jt-aaaa-2", "2"));
        await expectCode(store.createJoinToken(joinToken("jt-aaaa-1", "3")), "conflict");
        expect(await store.revokeJoinToken("jt-aaaa", t(1))).toBe(false);
        expect(await store.revokeJoinToken("jt-a", t(1))).toBe(false);
        expect((await store.listJoinTokens()).every((j) => j.revokedAt === null)).toBe(true);
      });

      it("keeps one release request per node until it is taken, then none", async () => {
        await store.requestQuarantineRelease({ nodeId: nodeId(1), requestedAt: t(1), reason: "false alarm" });
        await store.requestQuarantineRelease({ nodeId: nodeId(1), requestedAt: t(2), reason: null });
        await store.requestQuarantineRelease({ nodeId: nodeId(2), requestedAt: t(3), reason: null });
        const taken = await store.takeQuarantineReleases();
        expect(taken.sort((a, b) => a.nodeId.localeCompare(b.nodeId))).toEqual([
          { nodeId: nodeId(1), requestedAt: t(2), reason: null },
          { nodeId: nodeId(2), requestedAt: t(3), reason: null },
        ]);
        expect(await store.takeQuarantineReleases()).toEqual([]);
      });

      it("retires a node key once, naming its successor", async () => {
        await store.upsertNode(registration(1), t(1));
        expect(await store.retireNodeKey(nodeId(1), nodeId(2), t(5))).toBe(true);
        expect(await store.retireNodeKey(nodeId(1), nodeId(3), t(6))).toBe(false);
        expect(await store.retireNodeKey(nodeId(7), nodeId(3), t(6))).toBe(false);
        expect(await store.getNode(nodeId(1))).toMatchObject({ retiredAt: t(5), successorId: nodeId(2) });
      });
    });

    describe("measured speed", () => {
      it("keeps an EWMA (alpha 0.3) and a count per node and model", async () => {
        const first = await store.recordJobMetrics(nodeId(1), "m", [{ tokensPerSecond: 100, ttftMs: 50 }], t(1));
        expect(first).toMatchObject({ tokensPerSecond: 100, ttftMs: 50, samples: 1 });
        const second = await store.recordJobMetrics(nodeId(1), "m", [{ tokensPerSecond: 50, ttftMs: 150 }], t(2));
        expect(second.tokensPerSecond).toBeCloseTo(0.7 * 100 + 0.3 * 50, 9);
        expect(second.ttftMs).toBeCloseTo(0.7 * 50 + 0.3 * 150, 9);
        expect(second.samples).toBe(2);
        expect(second.updatedAt).toEqual(t(2));
        await store.recordJobMetrics(nodeId(1), "other", [{ tokensPerSecond: 10, ttftMs: 5 }], t(3));
        await store.recordJobMetrics(nodeId(2), "m", [{ tokensPerSecond: 20.5, ttftMs: 7 }], t(3));
        const all = await store.listNodeModelMetrics();
        expect(all.map((m) => [m.nodeId, m.model, m.samples])).toEqual([
          [nodeId(1), "m", 2],
          [nodeId(1), "other", 1],
          [nodeId(2), "m", 1],
        ]);
        expect((await store.listNodeModelMetrics({ nodeId: nodeId(2) }))[0]?.tokensPerSecond).toBe(20.5);
      });

      it("folds a run of samples in one write exactly as one write each, a sample without a rate leaving the rate", async () => {
        const run = [
          { tokensPerSecond: 40, ttftMs: 90 },
          { tokensPerSecond: 0, ttftMs: 30 },
          { tokensPerSecond: 80, ttftMs: 10 },
          { tokensPerSecond: 55.5, ttftMs: 200 },
        ];
        // One at a time on node 1, the same run in two batches on node 2 (the first batch creates the row).
        for (const [i, sample] of run.entries()) await store.recordJobMetrics(nodeId(1), "m", [sample], t(i));
        await store.recordJobMetrics(nodeId(2), "m", run.slice(0, 3), t(2));
        const batched = await store.recordJobMetrics(nodeId(2), "m", run.slice(3), t(3));
        const [single] = await store.listNodeModelMetrics({ nodeId: nodeId(1) });
        // By hand: the rate skips the 0 (40 → 0.7·40 + 0.3·80 = 52 → 0.7·52 + 0.3·55.5 = 53.05).
        expect(single!.tokensPerSecond).toBeCloseTo(53.05, 9);
        expect(single!.ttftMs).toBeCloseTo(0.7 * (0.7 * (0.7 * 90 + 0.3 * 30) + 0.3 * 10) + 0.3 * 200, 9);
        expect(batched.tokensPerSecond).toBeCloseTo(single!.tokensPerSecond, 9);
        expect(batched.ttftMs).toBeCloseTo(single!.ttftMs, 9);
        expect([batched.samples, single!.samples]).toEqual([4, 4]);
        expect(batched.updatedAt).toEqual(t(3));
      });

      it("refuses a negative or non-finite sample and changes nothing", async () => {
        await expectCode(store.recordJobMetrics(nodeId(1), "m", [{ tokensPerSecond: -1, ttftMs: 5 }], t(1)), "bad_request");
        await expectCode(store.recordJobMetrics(nodeId(1), "m", [{ tokensPerSecond: 5, ttftMs: Number.NaN }], t(1)), "bad_request");
        // One bad sample in a run refuses the whole run.
        await expectCode(store.recordJobMetrics(nodeId(1), "m", [{ tokensPerSecond: 5, ttftMs: 5 }, { tokensPerSecond: Infinity, ttftMs: 5 }], t(1)), "bad_request");
        await expectCode(store.recordJobMetrics(nodeId(1), "m", [], t(1)), "bad_request");
        expect(await store.listNodeModelMetrics()).toEqual([]);
      });
    });

    describe("node commands", () => {
      it("queues commands, hands out queued ones oldest first, and records progress and result", async () => {
        await store.upsertNode(registration(1), t(0));
        await store.upsertNode(registration(2), t(0));
        const install = await store.insertNodeCommand({ id: "c1", nodeId: nodeId(1), type: "model_install", model: "qwen2.5:7b", issuedAt: t(10) });
        expect(install).toEqual({ id: "c1", nodeId: nodeId(1), type: "model_install", model: "qwen2.5:7b", issuedAt: t(10), status: "queued", progress: null, error: null, updatedAt: t(10) });
        await store.insertNodeCommand({ id: "c0", nodeId: nodeId(1), type: "model_remove", model: "old", issuedAt: t(5) });
        await store.insertNodeCommand({ id: "c9", nodeId: nodeId(2), type: "model_install", model: "x", issuedAt: t(1) });
        expect((await store.nextQueuedCommands(nodeId(1))).map((c) => c.id)).toEqual(["c0", "c1"]);

        expect(await store.updateNodeCommand("c1", { status: "running", progress: 0.25, at: t(11) })).toBe(true);
        expect((await store.nextQueuedCommands(nodeId(1))).map((c) => c.id)).toEqual(["c0"]);
        await store.updateNodeCommand("c1", { status: "succeeded", progress: 1, at: t(20) });
        await store.updateNodeCommand("c0", { status: "failed", error: "model not installed", at: t(21) });
        expect(await store.getNodeCommand("c1")).toMatchObject({ status: "succeeded", progress: 1, updatedAt: t(20) });
        const listed = await store.listNodeCommands(nodeId(1));
        expect(listed.map((c) => [c.id, c.status, c.error])).toEqual([
          ["c0", "failed", "model not installed"],
          ["c1", "succeeded", null],
        ]);
        expect(await store.nextQueuedCommands(nodeId(1))).toEqual([]);
        expect((await store.listNodeCommands(nodeId(2))).map((c) => c.id)).toEqual(["c9"]);
      });

      it("refuses a command for an unknown node, a duplicate id and bad progress", async () => {
        await expectCode(store.insertNodeCommand({ id: "c1", nodeId: nodeId(5), type: "model_install", model: "m", issuedAt: t(0) }), "not_found");
        await store.upsertNode(registration(1), t(0));
        await store.insertNodeCommand({ id: "c1", nodeId: nodeId(1), type: "model_install", model: "m", issuedAt: t(0) });
        await expectCode(store.insertNodeCommand({ id: "c1", nodeId: nodeId(1), type: "model_remove", model: "m", issuedAt: t(1) }), "conflict");
        await expectCode(store.updateNodeCommand("c1", { status: "running", progress: 1.5, at: t(1) }), "bad_request");
        expect(await store.updateNodeCommand("ghost", { status: "running", at: t(1) })).toBe(false);
        expect((await store.getNodeCommand("c1"))?.status).toBe("queued");
      });
    });

    describe("node standing", () => {
      const standing = (n: number, overrides: Partial<NodeStandingRecord> = {}): NodeStandingRecord => ({
        nodeId: nodeId(n),
        operatorId: nodeId(100 + n),
        outcomes: "1101",
        cheatLogOdds: -4.59511985013459,
        checksPassed: 3,
        checksFailed: 1,
        cooldownUntil: t(3600),
        offenceStreak: 2,
        lastOffenceAt: t(0),
        quarantinedAt: null,
        updatedAt: t(1),
        ...overrides,
      });

      it("stores a node's standing whole and replaces it whole", async () => {
        await store.saveNodeStanding(standing(2));
        await store.saveNodeStanding(standing(1));
        expect(await store.listNodeStandings()).toEqual([standing(1), standing(2)]);
        const quarantined = standing(1, { outcomes: "1".repeat(200), cheatLogOdds: 12.5, checksFailed: 2, cooldownUntil: null, lastOffenceAt: null, quarantinedAt: t(7), updatedAt: t(8) });
        await store.saveNodeStanding(quarantined);
        expect(await store.listNodeStandings()).toEqual([quarantined, standing(2)]);
      });

      it("refuses a malformed window, a non-finite P(cheat) or a negative count, and stores nothing", async () => {
        for (const bad of [
          standing(1, { outcomes: "1".repeat(201) }),
          standing(1, { outcomes: "12" }),
          standing(1, { cheatLogOdds: Number.NaN }),
          standing(1, { cheatLogOdds: Number.POSITIVE_INFINITY }),
          standing(1, { checksPassed: -1 }),
          standing(1, { offenceStreak: 1.5 }),
        ]) {
          await expectCode(store.saveNodeStanding(bad), "bad_request");
        }
        expect(await store.listNodeStandings()).toEqual([]);
      });

      it("counts an operator's completed jobs without losing concurrent ones", async () => {
        expect(await store.addOperatorCompletedJobs("op-a", 1, t(0))).toBe(1);
        await Promise.all(Array.from({ length: 20 }, (_, i) => store.addOperatorCompletedJobs("op-a", 1, t(i + 1))));
        expect(await store.addOperatorCompletedJobs("op-a", 5, t(30))).toBe(26);
        await store.addOperatorCompletedJobs("op-b", 3, t(5));
        const list = await store.listOperatorStandings();
        expect(list.map((o) => [o.operatorId, o.completedJobs])).toEqual([
          ["op-a", 26],
          ["op-b", 3],
        ]);
        expect(list[1]!.updatedAt).toEqual(t(5));
      });

      it("refuses a count that is not a positive integer, and changes nothing", async () => {
        await store.addOperatorCompletedJobs("op-a", 2, t(0));
        for (const count of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
          await expectCode(store.addOperatorCompletedJobs("op-a", count, t(1)), "bad_request");
        }
        expect((await store.listOperatorStandings()).map((o) => [o.operatorId, o.completedJobs, o.updatedAt])).toEqual([["op-a", 2, t(0)]]);
      });

      it("keeps standing across close and reopen", async () => {
        await store.saveNodeStanding(standing(1, { quarantinedAt: t(9) }));
        await store.addOperatorCompletedJobs("op-a", 1, t(0));
        store = await harness.reopen();
        expect(await store.listNodeStandings()).toEqual([standing(1, { quarantinedAt: t(9) })]);
        expect((await store.listOperatorStandings())[0]?.completedJobs).toBe(1);
      });
    });

    describe("settings shared by replicas", () => {
      it("keeps the first value stored under a key, and gives it to every later and racing proposal", async () => {
        const first = await Promise.all(["alpha", "beta", "gamma"].map((v) => store.settleSetting("bus_cluster", v)));
        expect(new Set(first).size).toBe(1);
        expect(await store.settleSetting("bus_cluster", "delta")).toBe(first[0]);
        store = await harness.reopen();
        expect(await store.settleSetting("bus_cluster", "epsilon")).toBe(first[0]);
        expect(await store.settleSetting("other", "x")).toBe("x");
      });

      it("refuses empty, long or unprintable keys and values with bad_request, storing nothing", async () => {
        for (const [key, value] of [["", "v"], ["k", ""], ["k".repeat(201), "v"], ["k", "v\u0000"], ["k\n", "v"]]) {
          await expect(store.settleSetting(key!, value!)).rejects.toMatchObject({ code: "bad_request" });
        }
        expect(await store.settleSetting("k", "stored")).toBe("stored");
      });
    });

    describe("hostile text", () => {
      // What clients, nodes and operators may send. Free text comes back as `storableText` made it (NUL and lone
      // surrogates as U+FFFD, the same on both dialects); JSON and encrypted columns come back exactly.
      const HOSTILE = [
        "nul \u0000 byte",
        "\u0000",
        "lone \uD800 high and \uDC00 low surrogates",
        "'); drop table jobs;--",
        "right-to-left \u202Eoverride\u202C",
        "emoji 👋🏽 👩‍👩‍👧 \uFFFF",
        `long ${"é€𝄞".repeat(20_000)}`,
      ];

      it("stores every job field, free text made storable and content exact", async () => {
        for (const [i, text] of HOSTILE.entries()) {
          const id = `hostile-${i}-${text.slice(0, 20)}`;
          const hostileMessages: ChatMessage[] = [{ role: "user", content: text }];
          await store.insertJob(job(id, { model: text, ownerId: text, messages: hostileMessages, contentExpiresAt: t(3600) }));
          await store.updateJob(id, { status: "processing" });
          expect(await store.updateJob(id, { status: "completed", content: text, errorMessage: text }, { ifStatus: ["processing"] })).toBe(true);
          const got = await store.getJob(id);
          expect(got).toMatchObject({ id: storableText(id), model: storableText(text), ownerId: storableText(text), messages: hostileMessages, content: text, errorMessage: storableText(text), status: "completed" });
          // Lookups by the same hostile values find the same rows.
          expect((await store.listJobs(text, { limit: 5 })).map((j) => j.id)).toEqual([storableText(id)]);
        }
      });

      it("stores hostile node announcements, heartbeats and command errors", async () => {
        for (const [i, text] of HOSTILE.entries()) {
          const reg = registration(i + 1, {
            version: text,
            hardware: { cpu_cores: 1, ram_mb: 1, gpus: [{ vendor: "nvidia", name: text, vram_mb: 1 }], tier: text },
            models: [{ id: text, backend: "embedded" }],
          } as Partial<NodeRegistration>);
          await store.upsertNode(reg, t(0));
          await store.recordHeartbeat(nodeId(i + 1), hb({ loadedModels: [text], gpus: [{ name: text, memory_total_mb: 1, memory_used_mb: 0, utilization_pct: 0, temperature_c: 0 }] }), t(1));
          const node = await store.getNode(nodeId(i + 1));
          expect(node).toMatchObject({ version: storableText(text), hardware: reg.hardware, models: reg.models, loadedModels: [text] });
          expect(node?.gpus[0]?.name).toBe(text);
          await store.insertNodeCommand({ id: `c${i}`, nodeId: nodeId(i + 1), type: "model_install", model: text, issuedAt: t(2) });
          await store.updateNodeCommand(`c${i}`, { status: "failed", error: text, at: t(3) });
          expect(await store.getNodeCommand(`c${i}`)).toMatchObject({ model: storableText(text), error: storableText(text), status: "failed" });
        }
      });

      it("stores hostile key names and model ids, and refuses over-long ones on both dialects alike", async () => {
        const short = HOSTILE.filter((h) => h.length <= MAX_KEY_TEXT);
        for (const [i, text] of short.entries()) {
          await store.createApiKey({ id: `k${i}`, name: text, tokenSha256: (i + 10).toString(16).padStart(64, "0"), rateLimitPerMinute: 5, createdAt: t(0) });
          await store.recordJobMetrics(nodeId(1), text, [{ tokensPerSecond: 1, ttftMs: 1 }], t(0));
        }
        expect((await store.listApiKeys()).map((k) => k.name)).toEqual(short.map(storableText));
        expect((await store.listNodeModelMetrics()).map((m) => m.model).sort()).toEqual(short.map(storableText).sort());
        // revoke by the same hostile name
        expect(await store.revokeApiKey(short[0]!, t(1))).toBe(true);
        const long = "x".repeat(MAX_KEY_TEXT + 1);
        await expectCode(store.createApiKey({ id: "long", name: long, tokenSha256: sha("f"), rateLimitPerMinute: 5, createdAt: t(0) }), "bad_request");
        await expectCode(store.recordJobMetrics(nodeId(1), long, [{ tokensPerSecond: 1, ttftMs: 1 }], t(0)), "bad_request");
        // A random (incompressible) key of the maximum length in 4-byte characters fits PostgreSQL's index too.
        const widest = Array.from({ length: MAX_KEY_TEXT / 2 }, (_, i) => String.fromCodePoint(0x10000 + ((i * 7919) % 0xfffff))).join("");
        expect(widest.length).toBe(MAX_KEY_TEXT);
        await store.createApiKey({ id: "wide", name: widest, tokenSha256: sha("e"), rateLimitPerMinute: 5, createdAt: t(0) });
        await store.recordJobMetrics(nodeId(1), widest, [{ tokensPerSecond: 1, ttftMs: 1 }], t(0));
      });

      it("expires hostile content like any other", async () => {
        await store.insertJob(job("h", { messages: [{ role: "user", content: HOSTILE[0]! }], contentExpiresAt: t(10) }));
        await store.updateJob("h", { status: "completed", content: HOSTILE[0]! });
        expect(await store.expireJobContent(t(10))).toBe(1);
        expect(await store.getJob("h")).toMatchObject({ messages: null, content: null });
      });
    });

    it("keeps everything across close and reopen, and migrating again changes nothing", async () => {
      await store.upsertNode(registration(1), t(0));
      await store.insertJob(job("j1"));
      await store.createApiKey({ id: "k1", name: "n", tokenSha256: sha("1"), rateLimitPerMinute: 5, createdAt: t(0) });
      store = await harness.reopen();
      expect((await store.getNode(nodeId(1)))?.id).toBe(nodeId(1));
      expect((await store.getJob("j1"))?.messages).toEqual(messages);
      expect((await store.findApiKeyByHash(sha("1")))?.rateLimitPerMinute).toBe(5);
    });
  });
}

function hb(overrides: Partial<Parameters<Store["recordHeartbeat"]>[1]> = {}): Parameters<Store["recordHeartbeat"]>[1] {
  return {
    gpus: [{ name: "RTX 4090", memory_total_mb: 24_564, memory_used_mb: 1_024, utilization_pct: 3, temperature_c: 41 }],
    loadedModels: ["tiny-llama"],
    activeJobs: 0,
    maxConcurrency: 6,
    draining: false,
    ...overrides,
  };
}
