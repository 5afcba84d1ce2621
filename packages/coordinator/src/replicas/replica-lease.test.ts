import { mkdtempSync, rmSync, writeFileSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { loadCoordinatorConfig } from "../config.js";
import { createLogger } from "../logger.js";
import { openStore } from "../store/index.js";
import type { Store } from "../store/types.js";
import { loadOrCreateReplicaId } from "./replica-id.js";
import { LEASE_WATCH_MS, REPLICA_HEARTBEAT_MS, REPLICA_LEASE_MS, ReplicaLeaseHolder, STRANDED_RECORD_GRACE_MS } from "./replica-lease.js";

const JOB_TIMEOUT_MS = 300_000;
const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tessera-replica-"));
  dirs.push(dir);
  return dir;
}

async function memoryStore(): Promise<Store> {
  const store = await openStore({ sqlitePath: ":memory:" });
  stores.push(store);
  return store;
}

describe("--replica-id", () => {
  it("takes a short lowercase id from the flag or TESSERA_REPLICA_ID (flag first); none leaves it to the data dir", () => {
    expect(loadCoordinatorConfig({}, {}).replicaId).toBeUndefined();
    expect(loadCoordinatorConfig({}, { TESSERA_REPLICA_ID: "" }).replicaId).toBeUndefined();
    expect(loadCoordinatorConfig({}, { TESSERA_REPLICA_ID: "eu-west-1" }).replicaId).toBe("eu-west-1");
    expect(loadCoordinatorConfig({ replicaId: "b" }, { TESSERA_REPLICA_ID: "a" }).replicaId).toBe("b");
    expect(loadCoordinatorConfig({ replicaId: "x".repeat(40) }, {}).replicaId).toBe("x".repeat(40));
  });

  it.each([["Replica-A"], ["-a"], ["a_b"], ["a b"], ["a.b"], ["x".repeat(41)], ["ü"]])("refuses %j with bad_request naming flag and env", (bad) => {
    let caught: unknown;
    try {
      loadCoordinatorConfig({ replicaId: bad }, {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TesseraError);
    expect(caught).toMatchObject({ code: "bad_request", message: expect.stringContaining("--replica-id (TESSERA_REPLICA_ID) must be 1 to 40 characters of a-z, 0-9 and -") });
    expect(() => loadCoordinatorConfig({}, { TESSERA_REPLICA_ID: bad })).toThrow(/--replica-id \(TESSERA_REPLICA_ID\)/);
  });
});

describe("the replica id kept in the data dir", () => {
  it("is made once (0600) and read back the same on every start; another data dir gets another", () => {
    const dir = tempDir();
    const id = loadOrCreateReplicaId(dir);
    expect(id).toMatch(/^r-[0-9a-f]{10}$/);
    expect(loadOrCreateReplicaId(dir)).toBe(id);
    expect(readFileSync(join(dir, "replica-id"), "utf8")).toBe(`${id}\n`);
    expect(statSync(join(dir, "replica-id")).mode & 0o777).toBe(0o600);
    expect(loadOrCreateReplicaId(tempDir())).not.toBe(id);
  });

  it("refuses a file that does not hold an id, naming the file", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "replica-id"), "Not An Id\n", { mode: 0o600 });
    expect(() => loadOrCreateReplicaId(dir)).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringContaining(join(dir, "replica-id")) }));
  });
});

describe("the replica lease", () => {
  const logger = createLogger("silent");

  it("takes a free id at once, renews it every heartbeat from tick, and frees it on release", async () => {
    const store = await memoryStore();
    const clock = new ManualClock(1_000_000);
    const lease = new ReplicaLeaseHolder({ store, clock, logger, id: "r-a", address: "a:1", jobTimeoutMs: JOB_TIMEOUT_MS });
    await lease.acquire();
    expect(lease.holding).toBe(true);
    clock.advance(REPLICA_HEARTBEAT_MS - 1);
    lease.maybeRun();
    expect((await store.listReplicaLeases())[0]?.lastSeenAt.getTime()).toBe(1_000_000);
    clock.advance(1);
    // As the coordinator's tick does: call again until the renewal has landed (the first call's dead-replica sweep may
    // still be running, and one thing runs at a time).
    for (let i = 0; i < 500 && (await store.listReplicaLeases())[0]?.lastSeenAt.getTime() !== 1_000_000 + REPLICA_HEARTBEAT_MS; i++) {
      lease.maybeRun();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect((await store.listReplicaLeases())[0]?.lastSeenAt.getTime()).toBe(1_000_000 + REPLICA_HEARTBEAT_MS);
    await lease.release();
    expect(await store.listReplicaLeases()).toEqual([]);
  });

  it("takes over from a predecessor that died holding the id, once it is seen not renewing for two heartbeats", async () => {
    const store = await memoryStore();
    const clock = new ManualClock(1_000_000);
    await store.claimReplicaLease({ id: "r-a", instance: "crashed", address: "a:1", startedAt: new Date(0), lastSeenAt: new Date(clock.now() - 1_000) }, new Date(0));
    const slept: number[] = [];
    const lease = new ReplicaLeaseHolder({ store, clock, logger, id: "r-a", address: "a:1", jobTimeoutMs: JOB_TIMEOUT_MS, sleep: async (ms) => void (slept.push(ms), clock.advance(ms)) });
    await lease.acquire();
    expect(lease.holding).toBe(true);
    // watched for two heartbeats and a second, well before the lease itself would have lapsed
    expect(slept.reduce((a, b) => a + b, 0)).toBe(LEASE_WATCH_MS);
    expect(LEASE_WATCH_MS).toBeLessThan(REPLICA_LEASE_MS);
    expect(await store.listReplicaLeases()).toEqual([expect.objectContaining({ id: "r-a", instance: lease.instance })]);
  });

  it("refuses with conflict when the holder of its id renews while watched (a second process with the same id)", async () => {
    const store = await memoryStore();
    const clock = new ManualClock(1_000_000);
    const live = new ReplicaLeaseHolder({ store, clock, logger, id: "r-a", address: "live:7337", jobTimeoutMs: JOB_TIMEOUT_MS });
    await live.acquire();
    const second = new ReplicaLeaseHolder({
      store,
      clock,
      logger,
      id: "r-a",
      address: "second:7337",
      jobTimeoutMs: JOB_TIMEOUT_MS,
      sleep: async (ms) => {
        clock.advance(ms);
        await live.renew();
      },
    });
    await expect(second.acquire()).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining('replica id "r-a" is held by a live coordinator at live:7337') });
    expect(second.holding).toBe(false);
  });

  it("on SQLite (one process per file) takes the lease from a holder at once: a restart after a crash does not wait", async () => {
    const store = await memoryStore();
    const clock = new ManualClock(1_000_000);
    await store.claimReplicaLease({ id: "r-a", instance: "crashed", address: "a:1", startedAt: new Date(0), lastSeenAt: new Date(clock.now()) }, new Date(0));
    const lease = new ReplicaLeaseHolder({ store, clock, logger, id: "r-a", address: "a:1", jobTimeoutMs: JOB_TIMEOUT_MS, takeOverAtOnce: true, sleep: async () => expect.fail("must not wait") });
    await lease.acquire();
    expect(await store.listReplicaLeases()).toEqual([expect.objectContaining({ instance: lease.instance })]);
  });

  it("stops renewing and sweeping once another process took its id over (it let its lease lapse)", async () => {
    const store = await memoryStore();
    const clock = new ManualClock(1_000_000);
    const lease = new ReplicaLeaseHolder({ store, clock, logger, id: "r-a", address: "a:1", jobTimeoutMs: JOB_TIMEOUT_MS });
    await lease.acquire();
    clock.advance(REPLICA_LEASE_MS + 1);
    expect((await store.claimReplicaLease({ id: "r-a", instance: "newer", address: "b:1", startedAt: new Date(clock.now()), lastSeenAt: new Date(clock.now()) }, new Date(clock.now() - REPLICA_LEASE_MS))).claimed).toBe(true);
    await lease.renew();
    expect(lease.holding).toBe(false);
    expect(await store.listReplicaLeases()).toEqual([expect.objectContaining({ instance: "newer" })]);
  });

  it("ends its own job records still unfinished a grace past the job timeout (their last writes failed), never younger ones or another replica's", async () => {
    const store = await memoryStore();
    const clock = new ManualClock(10_000_000);
    const lease = new ReplicaLeaseHolder({ store, clock, logger, id: "r-a", address: "a:1", jobTimeoutMs: JOB_TIMEOUT_MS });
    await lease.acquire();
    const limit = JOB_TIMEOUT_MS + STRANDED_RECORD_GRACE_MS;
    const record = (id: string, ageMs: number, replicaId = "r-a") => ({
      id,
      ownerId: "owner-a",
      model: "tiny",
      messages: [{ role: "user" as const, content: "hi" }],
      promptSha256: "0".repeat(64),
      sampling: { max_tokens: 8, temperature: 0, top_p: 1 },
      createdAt: new Date(clock.now() - ageMs),
      replicaId,
    });
    await store.insertJob(record("stranded", limit + 1));
    await store.updateJob("stranded", { status: "processing" });
    await store.insertJob(record("running", limit - 1_000));
    await store.updateJob("running", { status: "processing" });
    await store.insertJob(record("theirs", limit + 1, "r-b"));
    await store.claimReplicaLease({ id: "r-b", instance: "b", address: "b:1", startedAt: new Date(clock.now()), lastSeenAt: new Date(clock.now()) }, new Date(0));

    // The tick's sweep does it (one thing at a time: wait for it to land).
    lease.maybeRun();
    for (let i = 0; i < 500 && (await store.getJob("stranded"))?.status !== "failed"; i++) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(await store.getJob("stranded")).toMatchObject({ status: "failed", error: "timeout", errorMessage: expect.stringContaining("could not be written") });
    expect((await store.getJob("running"))?.status).toBe("processing");
    expect((await store.getJob("theirs"))?.status).toBe("pending");
    expect(await lease.sweepStrandedRecords()).toEqual([]);
  });
});
