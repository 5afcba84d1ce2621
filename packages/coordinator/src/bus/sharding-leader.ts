import type { Clock } from "../clock.js";
import { BEAT_INTERVAL_MS } from "./replica-link.js";

/**
 * A replica waits this long after its first tick before it may lead sharded models: long enough to have heard every
 * live replica's beat, so a replica joining a running cluster never places spans beside the leader. Counted from the
 * first tick, not from construction: the coordinator builds the leader before it restores its state, subscribes to
 * the bus and listens, and a start-up longer than the window would otherwise leave the replica deciding before it
 * heard a beat.
 */
export const LEADER_SETTLE_MS = BEAT_INTERVAL_MS * 2;

export interface ShardingLeaderDeps {
  replicaId: string;
  clock: Clock;
  /** The other replicas alive now (ReplicaLink.livePeers). */
  peers(): string[];
  /** This replica leads sharded models, or does not (the sharding manager's `setLeading`). */
  setLeading(leading: boolean): void;
}

/**
 * Which replica leads sharded models (design.md "Sharded models across replicas"): the live replica with the lowest
 * id, once it has heard the cluster for LEADER_SETTLE_MS. Each replica decides alone from the beats it hears; the
 * coordinator's 1 s tick asks again, so a dead leader's successor takes over when the leader's beats stop.
 */
export class ShardingLeader {
  /** The clock at the first tick, which the coordinator runs only once the replica hears the bus. */
  private firstTickAt: number | undefined;

  constructor(private readonly d: ShardingLeaderDeps) {}

  tick(): void {
    const now = this.d.clock.now();
    this.firstTickAt ??= now;
    const settled = now - this.firstTickAt >= LEADER_SETTLE_MS;
    this.d.setLeading(settled && this.d.peers().every((peer) => this.d.replicaId < peer));
  }
}
