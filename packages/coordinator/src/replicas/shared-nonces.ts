import { MAX_CLOCK_SKEW_SECONDS } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { SharedNonceCheck } from "../http/node-auth.js";
import type { Logger } from "../logger.js";
import { GroupCommit } from "../payments/group-commit.js";
import type { Store } from "../store/types.js";

interface Claim {
  nodeKey: string;
  nonce: string;
  expiresAt: Date;
}

/**
 * Kept past the skew window: a signed request is accepted while its timestamp is within MAX_CLOCK_SKEW_SECONDS of the
 * accepting replica's clock, and replicas' clocks differ a little. Until every replica refuses the timestamp as
 * stale, its nonce must stay on record; 30 s more than the window covers any sane drift between NTP-synced hosts.
 */
export const NONCE_CLOCK_MARGIN_SECONDS = 30;
/** How often expired nonces are deleted: a minute's worth is a few thousand rows at most on a busy network. */
export const NONCE_PRUNE_MS = 60_000;

/**
 * The replicas' shared record of signed node requests (PostgreSQL only: on SQLite there is one process, and its
 * in-process cache is the whole check). Each signed request that passed every other check claims its (node key,
 * nonce) row with `insert … on conflict do nothing`; the primary key refuses the second use on any replica. Claims
 * arriving while one is being written go together in the next statement (group commit: one round trip and one commit
 * for many heartbeats under load; a lone claim waits one event-loop turn).
 */
export class SharedNonces implements SharedNonceCheck {
  private lastPruneAt = 0;
  private pruning: Promise<void> | undefined;
  private readonly claims: GroupCommit<Claim, boolean>;

  constructor(
    private readonly store: Pick<Store, "claimNodeNonce" | "claimNodeNonces" | "pruneNodeNonces">,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.claims = new GroupCommit(
      (batch) => store.claimNodeNonces(batch),
      (one) => store.claimNodeNonce(one.nodeKey, one.nonce, one.expiresAt),
    );
  }

  claim(nodeKey: string, nonce: string, timestampSeconds: number): Promise<boolean> {
    return this.claims.add({ nodeKey, nonce, expiresAt: new Date((timestampSeconds + MAX_CLOCK_SKEW_SECONDS + NONCE_CLOCK_MARGIN_SECONDS) * 1000) });
  }

  /** Deletes expired nonces when a prune is due; called every tick, never runs two at once. */
  maybePrune(): void {
    const now = this.clock.now();
    if (this.pruning || now - this.lastPruneAt < NONCE_PRUNE_MS) return;
    this.lastPruneAt = now;
    this.pruning = this.store
      .pruneNodeNonces(new Date(now))
      .then(() => undefined)
      .catch((err: unknown) => this.logger.error({ err }, "pruning expired node nonces failed"))
      .finally(() => (this.pruning = undefined));
  }

  /** Waits for a prune in progress (shutdown, before the store closes). */
  async settled(): Promise<void> {
    await this.pruning;
  }
}
