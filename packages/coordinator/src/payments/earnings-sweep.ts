import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { Store } from "../store/types.js";
import { forfeitReceipt, releaseReceipt } from "./ledger-rules.js";

export interface EarningsSweepDeps {
  store: Pick<Store, "listReleasableReceipts" | "listReceipts" | "transitionReceipt">;
  clock: Clock;
  logger: Logger;
  /** Nodes the trust system has quarantined (node-standing.ts): what they hold is forfeited. */
  quarantinedNodes(): Iterable<string>;
}

/** Receipts moved per pass, so one pass never holds the event loop or the database for long. */
const BATCH = 500;

/**
 * Moves earnings along as time and trust decide (payments/design.md):
 * - a held receipt whose hold (the dispute window) has ended becomes available, unless its node is quarantined;
 * - every held receipt of a quarantined node is forfeited: the client gets its money back, the pool its reward.
 * Each move is one store call that changes the receipt's status and posts its money together, conditional on the
 * status it expects, so two replicas or a rerun never move a receipt twice.
 */
export class EarningsSweep {
  constructor(private readonly d: EarningsSweepDeps) {}

  async run(): Promise<{ released: number; forfeited: number }> {
    const now = new Date(this.d.clock.now());
    const quarantined = new Set(this.d.quarantinedNodes());
    let released = 0;
    let forfeited = 0;
    for (const nodeId of quarantined) {
      for (const r of await this.d.store.listReceipts({ nodeId, status: "held", limit: BATCH })) {
        if (await this.d.store.transitionReceipt({ receiptId: r.receipt_id, from: "held", to: "forfeited", transaction: forfeitReceipt(r, now) }, now)) forfeited++;
      }
    }
    for (const r of await this.d.store.listReleasableReceipts(now, BATCH)) {
      if (quarantined.has(r.node_id)) continue;
      if (await this.d.store.transitionReceipt({ receiptId: r.receipt_id, from: "held", to: "available", transaction: releaseReceipt(r, now) }, now)) released++;
    }
    if (released + forfeited > 0) this.d.logger.info({ released, forfeited }, "earnings moved");
    return { released, forfeited };
  }
}
