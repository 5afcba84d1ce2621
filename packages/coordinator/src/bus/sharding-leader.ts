import type { Clock } from "../clock.js";
import { BEAT_INTERVAL_MS } from "./replica-link.js";

/**
 * A replica waits this long after it starts before it may lead sharded models: long enough to have heard every live
 * replica's beat, so a replica joining a running cluster never places spans beside the leader.
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
  private readonly startedAt: number;

  constructor(private readonly d: ShardingLeaderDeps) {
    this.startedAt = d.clock.now();
  }

  tick(): void {
    const settled = this.d.clock.now() - this.startedAt >= LEADER_SETTLE_MS;
    this.d.setLeading(settled && this.d.peers().every((peer) => this.d.replicaId < peer));
  }
}
