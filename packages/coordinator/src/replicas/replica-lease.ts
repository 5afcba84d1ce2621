import { randomBytes } from "node:crypto";
import { TesseraError } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { ReplicaLease, Store } from "../store/types.js";

/**
 * How often a replica renews its lease. Often enough that a holder that is alive is seen renewing within seconds
 * (start-up tells a crashed predecessor from a live duplicate by that), and one small UPDATE per replica every 5 s is
 * nothing to the database.
 */
export const REPLICA_HEARTBEAT_MS = 5_000;
/**
 * A replica not seen for this long is dead, and its unfinished jobs may be ended by any other replica. Six missed
 * heartbeats: a GC pause, a database failover or a slow disk for a few seconds must not declare a live replica dead
 * (its running jobs would be ended under it). Each replica writes its own clock's time and the others compare it with
 * theirs, so this is also far above the skew of NTP-synchronised clocks.
 */
export const REPLICA_LEASE_MS = 30_000;
/**
 * How often a replica looks for dead replicas' unfinished jobs and ends them. A dead replica's jobs are ended at most
 * lease + 10 s after its last heartbeat; the look is one indexed UPDATE.
 */
export const DEAD_REPLICA_SWEEP_MS = 10_000;
/**
 * At start-up, a lease held under this replica's id by another process is watched this long: a holder that renews
 * within two heartbeats is alive (a second process with the same id: refused); one that does not is a predecessor
 * that died without releasing it (SIGKILL, a power cut), and is taken over.
 */
export const LEASE_WATCH_MS = 2 * REPLICA_HEARTBEAT_MS + 1_000;
const LEASE_POLL_MS = 1_000;
/** The latest instant a Date holds: "stale before" it means any holder. */
const MAX_DATE_MS = 8_640_000_000_000_000;
const TAKEN_OVER_MESSAGE = "the coordinator replica that held the job stopped while the job was running";
/**
 * How long past the job timeout an unfinished record of this replica's own is left before the sweep ends it: every
 * job running here has ended by its timeout, and its last write is queued behind the job's earlier ones, so a record
 * still unfinished a minute later is one whose last writes failed (the database was away), not one being written.
 */
export const STRANDED_RECORD_GRACE_MS = 60_000;
const STRANDED_MESSAGE = "the job's record could not be written when the job ended; its replica's sweep ended it";

export type ReplicaLeaseStore = Pick<Store, "claimReplicaLease" | "renewReplicaLease" | "releaseReplicaLease" | "failJobsOfDeadReplicas" | "offlineNodesOfDeadReplicas" | "failOwnJobs">;

export interface ReplicaLeaseOptions {
  store: ReplicaLeaseStore;
  clock: Clock;
  logger: Logger;
  id: string;
  /** Where this replica listens, as shown to operators. */
  address: string;
  /**
   * The job timeout (`--job-timeout`): a record of this replica's own still unfinished STRANDED_RECORD_GRACE_MS after
   * it is ended by the sweep, since no job runs that long.
   */
  jobTimeoutMs: number;
  /** Told the ids of the jobs of dead replicas this replica ended (their escrow is refunded there). */
  onTakenOver?: (jobIds: string[]) => void;
  /** Waits between looks at a held lease at start-up (tests pass a fake). */
  sleep?: (ms: number) => Promise<void>;
  /** Random per process by default. */
  instance?: string;
  /**
   * Take the lease from any holder at start-up, without watching it: on SQLite, one process per database file is
   * the model (nothing shares it with replicas), and a restart after a crash must not wait for the dead process's
   * lease. The holder, if it still runs, finds its lease gone at its next renewal and logs it.
   */
  takeOverAtOnce?: boolean;
}

/**
 * This replica's lease on its id in the shared store, and the duties that come with the lease: renew it every
 * heartbeat, and end the unfinished jobs of replicas whose lease lapsed, so no job stays `processing` for ever.
 * `acquire` runs before anything touches jobs, so that a replica's start-up recovery (which ends its own unfinished
 * jobs) can never run while another live process holds the same id.
 */
export class ReplicaLeaseHolder {
  readonly instance: string;
  private address: string;
  private held = false;
  private lastRenewAt = 0;
  private lastSweepAt = 0;
  private busy: Promise<void> | undefined;

  constructor(private readonly o: ReplicaLeaseOptions) {
    this.instance = o.instance ?? randomBytes(8).toString("hex");
    this.address = o.address;
  }

  get id(): string {
    return this.o.id;
  }

  /** Whether this process holds its id's lease (false before `acquire`, after `release`, and once taken over). */
  get holding(): boolean {
    return this.held;
  }

  /**
   * Takes the lease, waiting out a predecessor that died holding it. Throws `conflict` when another live process
   * holds this id.
   */
  async acquire(): Promise<void> {
    const sleep = this.o.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    // How long the holder has been watched, counted in the waits themselves, not on the clock (which may jump).
    let watched: { lastSeenAt: number; forMs: number } | undefined;
    for (;;) {
      const now = this.o.clock.now();
      // A holder seen still at the same last renewal after the watch is dead: claim exactly that stale row.
      const staleBefore = this.o.takeOverAtOnce
        ? MAX_DATE_MS
        : watched && watched.forMs >= LEASE_WATCH_MS
          ? watched.lastSeenAt + 1
          : now - REPLICA_LEASE_MS;
      const result = await this.o.store.claimReplicaLease(this.lease(now), new Date(staleBefore));
      if (result.claimed) break;
      const seen = result.holder.lastSeenAt.getTime();
      if (watched && seen !== watched.lastSeenAt) throw this.inUse(result.holder, now);
      if (!watched) {
        this.o.logger.warn(
          { replica: this.o.id, holder: result.holder.address, last_seen_ms_ago: now - seen },
          "replica id held by another process: waiting to see whether it is alive",
        );
        watched = { lastSeenAt: seen, forMs: 0 };
      }
      await sleep(LEASE_POLL_MS);
      watched.forMs += LEASE_POLL_MS;
    }
    this.held = true;
    this.lastRenewAt = this.o.clock.now();
    this.o.logger.info({ replica: this.o.id, instance: this.instance }, "replica lease taken");
  }

  /** Records where this replica listens once it does (the lease row shows it). */
  async announce(address: string): Promise<void> {
    this.address = address;
    const now = this.o.clock.now();
    const result = await this.o.store.claimReplicaLease(this.lease(now), new Date(now - REPLICA_LEASE_MS));
    if (!result.claimed) this.lost(result.holder);
  }

  /** Renews the lease and sweeps dead replicas when each is due; called every tick, never runs two at once. */
  maybeRun(): void {
    if (!this.held || this.busy) return;
    const now = this.o.clock.now();
    const renew = now - this.lastRenewAt >= REPLICA_HEARTBEAT_MS;
    const sweep = now - this.lastSweepAt >= DEAD_REPLICA_SWEEP_MS;
    if (!renew && !sweep) return;
    this.busy = (async () => {
      if (renew) await this.renew();
      if (sweep && this.held) await this.sweepDeadReplicas();
      if (sweep && this.held) await this.sweepStrandedRecords();
    })()
      .catch((err: unknown) => this.o.logger.error({ err }, "replica lease renewal or dead-replica sweep failed"))
      .finally(() => (this.busy = undefined));
  }

  async renew(): Promise<void> {
    const now = this.o.clock.now();
    this.lastRenewAt = now;
    if (!(await this.o.store.renewReplicaLease(this.o.id, this.instance, new Date(now)))) this.lost();
  }

  /**
   * Ends the unfinished jobs of every other replica whose lease lapsed, and records offline the nodes it held (those
   * that moved to a live replica are recorded online by it); returns the jobs' ids.
   */
  async sweepDeadReplicas(): Promise<string[]> {
    const now = this.o.clock.now();
    this.lastSweepAt = now;
    const nodes = await this.o.store.offlineNodesOfDeadReplicas(this.o.id, new Date(now - REPLICA_LEASE_MS), new Date(now));
    if (nodes.length > 0) this.o.logger.info({ nodes: nodes.length }, "recorded offline the nodes of coordinator replicas whose lease lapsed");
    const ended = await this.o.store.failJobsOfDeadReplicas(this.o.id, new Date(now - REPLICA_LEASE_MS), new Date(now), TAKEN_OVER_MESSAGE);
    if (ended.length > 0) {
      this.o.logger.warn({ jobs: ended.length }, "ended the unfinished jobs of coordinator replicas whose lease lapsed");
      this.o.onTakenOver?.(ended);
    }
    return ended;
  }

  /**
   * Ends this replica's own job records that are still unfinished well past the job timeout: a job whose final write
   * and its fallback both failed (onStoreFailure in the job manager) would otherwise read `processing` until the next
   * restart. Their escrow is left to the start-up reconciliation, as for any job whose record failed. Returns the ids.
   */
  async sweepStrandedRecords(): Promise<string[]> {
    const now = this.o.clock.now();
    const ended = await this.o.store.failOwnJobs(this.o.id, new Date(now - this.o.jobTimeoutMs - STRANDED_RECORD_GRACE_MS), new Date(now), STRANDED_MESSAGE);
    if (ended.length > 0) this.o.logger.warn({ jobs: ended.length }, "ended this replica's job records left unfinished past the job timeout (their last writes failed)");
    return ended;
  }

  /** Gives the lease up at a clean shutdown (after this replica's jobs were ended), so the id is free at once. */
  async release(): Promise<void> {
    await this.busy;
    if (!this.held) return;
    this.held = false;
    await this.o.store.releaseReplicaLease(this.o.id, this.instance);
  }

  private lease(now: number): ReplicaLease {
    return { id: this.o.id, instance: this.instance, address: this.address, startedAt: new Date(now), lastSeenAt: new Date(now) };
  }

  /**
   * Another process holds this id now: this one let its lease lapse (its database was out of reach for longer than
   * the lease) and was taken over. Its jobs may have been ended by another replica; its own final writes are
   * conditional, so they leave those records alone. It stops renewing and sweeping.
   */
  private lost(holder?: ReplicaLease): void {
    this.held = false;
    this.o.logger.error(
      { replica: this.o.id, holder: holder?.address },
      "this coordinator lost its replica lease to another process: restart it, or give each process its own --replica-id",
    );
  }

  private inUse(holder: ReplicaLease, now: number): TesseraError {
    return new TesseraError(
      "conflict",
      `replica id "${this.o.id}" is held by a live coordinator at ${holder.address} (it renewed its lease ${Math.max(0, Math.round((now - holder.lastSeenAt.getTime()) / 1000))} s ago): ` +
        "give each replica its own --replica-id (TESSERA_REPLICA_ID)",
    );
  }
}
