/**
 * What every store dialect must do for coordinator replicas sharing one database (replicas/design.md): job
 * ownership and conditional final writes, replica leases, and the shared record of node nonces. Run by
 * `sqlite-store.test.ts` and `postgres-store.test.ts` against a fresh database each test, beside the store contract.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChatMessage, Sampling } from "@tessera/protocol";
import type { StoreHarness } from "./store-contract-suite.js";
import type { JobPatch, NewJob, NodeRegistration, ReplicaLease, Store } from "./types.js";

const BASE = 1_700_000_000_000;
const t = (seconds: number) => new Date(BASE + seconds * 1000);
const messages: ChatMessage[] = [{ role: "user", content: "hi" }];
const sampling: Sampling = { max_tokens: 8, temperature: 0, top_p: 1, seed: 1 };
const UNFINISHED = ["pending", "processing"] as const;
const node = (n: number) => String(n).padStart(64, "0");

function registration(n: number): NodeRegistration {
  return { id: node(n), version: "0.1.0", hardware: { cpu_cores: 2, ram_mb: 4096, gpus: [] }, models: [{ id: "m", backend: "embedded" }], maxConcurrency: 1, operatorId: node(n), delegationExpiresAt: null };
}

function job(id: string, replicaId: string | null, overrides: Partial<NewJob> = {}): NewJob {
  return { id, ownerId: "owner-a", model: "m", messages, promptSha256: "a".repeat(64), sampling, createdAt: t(0), replicaId, ...overrides };
}

function lease(id: string, instance: string, at: number, address = `${id}.example:7337`): ReplicaLease {
  return { id, instance, address, startedAt: t(at), lastSeenAt: t(at) };
}

const completed: JobPatch = { status: "completed", content: "the answer", outputSha256: "b".repeat(64), completionTokens: 2, completedAt: t(20), error: null, errorMessage: null };

export function defineReplicaContract(label: string, openHarness: () => Promise<StoreHarness>): void {
  describe(`replica state on ${label}`, () => {
    let harness: StoreHarness;
    let store: Store;
    beforeEach(async () => {
      harness = await openHarness();
      store = harness.store;
    });
    afterEach(async () => {
      await harness.dispose();
    });

    it("records each job's owning replica and writes a job only while its condition holds", async () => {
      await store.insertJob(job("a1", "r-a"));
      expect((await store.getJob("a1"))?.replicaId).toBe("r-a");
      await store.updateJob("a1", { status: "processing" });
      // another replica's compare-and-set misses; the owner's lands
      expect(await store.updateJob("a1", completed, { ifStatus: UNFINISHED, ifReplica: "r-b" })).toBe(false);
      expect((await store.getJob("a1"))?.status).toBe("processing");
      expect(await store.updateJob("a1", completed, { ifStatus: UNFINISHED, ifReplica: "r-a" })).toBe(true);
      expect(await store.getJob("a1")).toMatchObject({ status: "completed", content: "the answer", error: null, errorMessage: null });
      // an ended job is never written again by its owner's conditional writes
      expect(await store.updateJob("a1", { status: "failed", error: "timeout" }, { ifStatus: UNFINISHED, ifReplica: "r-a" })).toBe(false);
      expect((await store.getJob("a1"))?.status).toBe("completed");
    });

    it("a job ended by another replica's restart or sweep is never completed over (the issue's completed-with-error row)", async () => {
      await store.insertJob(job("mine", "r-a"));
      await store.updateJob("mine", { status: "processing" });
      await store.insertJob(job("legacy", null));
      // B restarts: it ends its own and unowned jobs, never A's
      expect(await store.failOwnJobs("r-b", t(10), t(10), "restarted")).toEqual(["legacy"]);
      expect((await store.getJob("mine"))?.status).toBe("processing");
      // A's lease lapses and B's sweep ends A's job; A's completion then misses and leaves B's record whole
      expect(await store.failJobsOfDeadReplicas("r-b", t(5), t(11), "replica gone")).toEqual(["mine"]);
      expect(await store.updateJob("mine", completed, { ifStatus: UNFINISHED, ifReplica: "r-a" })).toBe(false);
      expect(await store.getJob("mine")).toMatchObject({ status: "failed", error: "timeout", errorMessage: "replica gone", content: null });
    });

    it("a completion racing another replica's sweep: exactly one wins, and the row is never completed with an error", async () => {
      for (let i = 0; i < 20; i++) {
        const id = `race-${i}`;
        await store.insertJob(job(id, "r-a", { createdAt: t(i) }));
        await store.updateJob(id, { status: "processing" });
        const [finished, swept] = await Promise.all([
          store.updateJob(id, completed, { ifStatus: UNFINISHED, ifReplica: "r-a" }),
          store.failJobsOfDeadReplicas("r-b", t(1000), t(1000), "replica gone"),
        ]);
        const row = await store.getJob(id);
        expect(finished !== swept.includes(id)).toBe(true);
        if (finished) expect(row).toMatchObject({ status: "completed", error: null, errorMessage: null });
        else expect(row).toMatchObject({ status: "failed", error: "timeout", content: null });
      }
    });

    it("ends the unfinished jobs only of replicas whose lease lapsed or that hold none, never its own, a live one's or unowned ones", async () => {
      await store.claimReplicaLease(lease("r-live", "i1", 100), t(0));
      await store.claimReplicaLease(lease("r-dead", "i2", 10), t(0));
      await store.claimReplicaLease(lease("r-self", "i3", 10), t(0));
      for (const [id, owner] of [["live", "r-live"], ["dead", "r-dead"], ["gone", "r-gone"], ["self", "r-self"], ["old", null]] as const) {
        await store.insertJob(job(id, owner));
      }
      await store.insertJob(job("dead-done", "r-dead"));
      await store.updateJob("dead-done", completed);
      expect(await store.failJobsOfDeadReplicas("r-self", t(70), t(130), "replica gone")).toEqual(["dead", "gone"]);
      expect((await store.getJob("live"))?.status).toBe("pending");
      // an unowned row may be a running job of a coordinator from before replicas: left to the next start-up
      expect((await store.getJob("old"))?.status).toBe("pending");
      expect((await store.getJob("self"))?.status).toBe("pending");
      expect(await store.getJob("dead-done")).toMatchObject({ status: "completed", error: null });
      expect(await store.getJob("dead")).toMatchObject({ status: "failed", error: "timeout", errorMessage: "replica gone", completedAt: t(130) });
      expect(await store.failJobsOfDeadReplicas("r-self", t(70), t(131), "again")).toEqual([]);
    });

    it("records a node offline only for the replica holding it (or for anyone when nobody does)", async () => {
      for (const n of [1, 2]) await store.upsertNode(registration(n), t(0));
      expect(await store.setNodeStatus(node(1), "online", t(1), "r-a")).toBe(true);
      // B's start-up or a late session close on B: A holds the node, and the record keeps it online.
      expect(await store.setNodeStatus(node(1), "offline", t(2), "r-b")).toBe(false);
      expect(await store.getNode(node(1))).toMatchObject({ status: "online", statusChangedAt: t(1) });
      // It moved to B: B holds it now, and A's late close changes nothing either.
      expect(await store.setNodeStatus(node(1), "online", t(3), "r-b")).toBe(true);
      expect(await store.setNodeStatus(node(1), "offline", t(4), "r-a")).toBe(false);
      expect(await store.setNodeStatus(node(1), "offline", t(5), "r-b")).toBe(true);
      expect(await store.getNode(node(1))).toMatchObject({ status: "offline", statusChangedAt: t(5) });
      // Nobody holds node 2 (a row from before replicas, or a heartbeat's online): anyone may record it offline.
      await store.recordHeartbeat(node(2), { gpus: [], loadedModels: [], activeJobs: 0, maxConcurrency: 1, draining: false }, t(6));
      expect(await store.setNodeStatus(node(2), "offline", t(7), "r-b")).toBe(true);
    });

    it("records offline the nodes of replicas whose lease lapsed, never its own, a live one's or nobody's", async () => {
      await store.claimReplicaLease(lease("r-live", "i1", 100), t(0));
      await store.claimReplicaLease(lease("r-dead", "i2", 10), t(0));
      await store.claimReplicaLease(lease("r-self", "i3", 10), t(0));
      for (const n of [1, 2, 3, 4, 5]) await store.upsertNode(registration(n), t(0));
      for (const [n, holder] of [[1, "r-live"], [2, "r-dead"], [3, "r-gone"], [4, "r-self"]] as const) await store.setNodeStatus(node(n), "online", t(50), holder);
      await store.recordHeartbeat(node(5), { gpus: [], loadedModels: [], activeJobs: 0, maxConcurrency: 1, draining: false }, t(50));
      expect(await store.offlineNodesOfDeadReplicas("r-self", t(70), t(130))).toEqual([node(2), node(3)]);
      expect((await store.listNodes({ status: "online" })).map((n) => n.id)).toEqual([node(1), node(4), node(5)]);
      expect(await store.getNode(node(2))).toMatchObject({ status: "offline", statusChangedAt: t(130) });
      expect(await store.offlineNodesOfDeadReplicas("r-self", t(70), t(131))).toEqual([]);
    });

    it("gives a replica id's lease to one instance at a time: the same instance renews, a lapsed one is taken over", async () => {
      expect(await store.claimReplicaLease(lease("r-a", "first", 0), t(-30))).toEqual({ claimed: true });
      // a second process with the same id while the first is live: refused, told who holds it
      const refused = await store.claimReplicaLease(lease("r-a", "second", 5), t(-25));
      expect(refused).toEqual({ claimed: false, holder: lease("r-a", "first", 0) });
      expect(await store.renewReplicaLease("r-a", "first", t(10))).toBe(true);
      expect(await store.renewReplicaLease("r-a", "second", t(10))).toBe(false);
      // the same instance may claim again (it announces its address once it listens)
      expect(await store.claimReplicaLease(lease("r-a", "first", 11, "127.0.0.1:1234"), t(-19))).toEqual({ claimed: true });
      // once the holder's last renewal is before the stale mark, a new process takes over
      expect(await store.claimReplicaLease(lease("r-a", "second", 50), t(12))).toEqual({ claimed: true });
      expect(await store.renewReplicaLease("r-a", "first", t(51))).toBe(false);
      expect(await store.listReplicaLeases()).toEqual([lease("r-a", "second", 50)]);
      // release: only by the holder
      expect(await store.releaseReplicaLease("r-a", "first")).toBe(false);
      expect(await store.releaseReplicaLease("r-a", "second")).toBe(true);
      expect(await store.listReplicaLeases()).toEqual([]);
    });

    it("two processes racing for one replica id: exactly one gets the lease", async () => {
      for (let i = 0; i < 10; i++) {
        const id = `r-race-${i}`;
        const results = await Promise.all([store.claimReplicaLease(lease(id, "x", 0), t(-30)), store.claimReplicaLease(lease(id, "y", 0), t(-30))]);
        expect(results.filter((r) => r.claimed)).toHaveLength(1);
      }
    });

    it("refuses a node key's nonce the second time, from any replica, until it expires and is pruned", async () => {
      const key = "c".repeat(64);
      expect(await store.claimNodeNonce(key, "n1", t(60))).toBe(true);
      expect(await store.claimNodeNonce(key, "n1", t(60))).toBe(false);
      // the same nonce under another key is another request
      expect(await store.claimNodeNonce("d".repeat(64), "n1", t(60))).toBe(true);
      const racing = await Promise.all(Array.from({ length: 8 }, () => store.claimNodeNonce(key, "n2", t(61))));
      expect(racing.filter(Boolean)).toHaveLength(1);
      expect(await store.pruneNodeNonces(t(59))).toBe(0);
      expect(await store.pruneNodeNonces(t(60))).toBe(2);
      expect(await store.claimNodeNonce(key, "n2", t(62))).toBe(false);
      expect(await store.pruneNodeNonces(t(61))).toBe(1);
      expect(await store.claimNodeNonce(key, "n1", t(120))).toBe(true);
    });

    it("claims many nonces in one call, each answer in its place; a pair twice in one call is claimed once", async () => {
      const key = "e".repeat(64);
      expect(await store.claimNodeNonce(key, "used", t(60))).toBe(true);
      const claims = ["a", "used", "b", "a", "c"].map((nonce) => ({ nodeKey: key, nonce, expiresAt: t(60) }));
      expect(await store.claimNodeNonces(claims)).toEqual([true, false, true, false, true]);
      expect(await store.claimNodeNonces([])).toEqual([]);
      expect(await store.claimNodeNonce(key, "c", t(60))).toBe(false);
      // two batches racing over the same nonces: each nonce goes to one of them
      const racing = await Promise.all([0, 1].map(() => store.claimNodeNonces(["x", "y", "z"].map((nonce) => ({ nodeKey: key, nonce, expiresAt: t(60) })))));
      expect(racing[0]!.map((won, i) => Number(won) + Number(racing[1]![i]))).toEqual([1, 1, 1]);
    });
  });
}
