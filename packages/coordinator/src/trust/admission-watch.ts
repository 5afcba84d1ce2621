import { KEY_ROTATION_GRACE_SECONDS, encodeNpub } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import type { Store } from "../store/types.js";
import type { NodeStanding } from "./node-standing.js";

/** How often the store is asked for operators whose status changed (a ban by the CLI lands within this). */
export const ADMISSION_POLL_MS = 5_000;
/** Changes are read from a little before the last poll: a status written during that poll is never missed. */
const OVERLAP_MS = 2_000;

/**
 * Carries out, on live nodes, what the record says about their admission. The CLI bans an operator by writing the
 * store (it may run on another machine); within ADMISSION_POLL_MS the operator's nodes here are evicted: sessions
 * closed, jobs moved to other nodes, registrations refused from then on. A node key past its rotation grace goes the
 * same way. Releases from quarantine (`tessera coordinator nodes release`) travel the same road.
 */
export class AdmissionWatch {
  private lastPollAt: number;
  private polling: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly registry: NodeRegistry,
    private readonly standing: Pick<NodeStanding, "release">,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.lastPollAt = clock.now();
  }

  /** Polls when ADMISSION_POLL_MS has passed since the last poll and none is running; called by the 1 s tick. */
  maybePoll(): void {
    if (this.polling || this.clock.now() - this.lastPollAt < ADMISSION_POLL_MS) return;
    this.polling = this.poll()
      .then(() => undefined)
      .catch((err: unknown) => this.logger.error({ err }, "admission poll failed"))
      .finally(() => (this.polling = undefined));
  }

  /**
   * Evicts nodes of operators no longer active, and node keys whose rotation grace has ended; lifts the quarantines the
   * owner asked to lift. Returns the evicted.
   */
  async poll(): Promise<string[]> {
    const startedAt = this.clock.now();
    const changed = await this.store.listOperatorsChangedSince(new Date(this.lastPollAt - OVERLAP_MS));
    this.lastPollAt = startedAt;
    const revoked = new Map(changed.filter((o) => o.status !== "active").map((o) => [o.id, o.status]));
    const evicted: string[] = [];
    for (const node of [...this.registry.all()]) {
      const status = revoked.get(node.operatorId);
      if (status) {
        if (this.registry.evict(node.id, `operator ${status}`)) evicted.push(node.id);
        this.logger.warn({ node: node.id.slice(0, 12), operator: encodeNpub(node.operatorId), status }, "node evicted: its operator is no longer admitted");
      } else if (node.retiredAt !== undefined && startedAt >= node.retiredAt + KEY_ROTATION_GRACE_SECONDS * 1000) {
        if (this.registry.evict(node.id, "key rotated")) evicted.push(node.id);
        this.logger.info({ node: node.id.slice(0, 12) }, "node key evicted: its rotation grace has ended");
      }
    }
    for (const release of await this.store.takeQuarantineReleases()) {
      const lifted = this.standing.release(release.nodeId);
      this.logger.info({ node: release.nodeId.slice(0, 12), reason: release.reason, lifted }, lifted ? "quarantine lifted" : "release asked for a node not in quarantine");
    }
    return evicted;
  }
}
