import { randomUUID } from "node:crypto";
import type { Receipt } from "@tessera/protocol";
import {
  LEDGER_WORLD,
  PLATFORM_FEES,
  REWARD_POOL,
  clientCredit,
  clientEscrow,
  operatorAvailable,
  operatorHeld,
} from "../store/ledger-accounts.js";
import type { LedgerEntry, NewLedgerTransaction } from "../store/types.js";

/**
 * Every way money moves, as balanced transactions (payments/design.md has the picture). Pure: the store posts them,
 * each with an idempotency key named after the event, so an event posted twice moves money once.
 */

function tx(kind: string, idempotencyKey: string, at: Date, entries: LedgerEntry[], extra: { jobId?: string; memo?: string } = {}): NewLedgerTransaction {
  return { id: randomUUID(), idempotencyKey, kind, createdAt: at, entries: entries.filter((e) => e.amount !== 0), jobId: extra.jobId ?? null, memo: extra.memo ?? null };
}

/** A client's top-up, from outside the network; `source` says where it came from (a payment reference, "cli"). */
export function topUp(ownerId: string, amount: number, source: string, at: Date, idempotencyKey = `topup:${randomUUID()}`): NewLedgerTransaction {
  return tx("topup", idempotencyKey, at, [{ account: LEDGER_WORLD, amount: -amount }, { account: clientCredit(ownerId), amount }], { memo: source });
}

/** The owner funds the reward pool (free networks pay contributors from it). */
export function fundRewardPool(amount: number, source: string, at: Date, idempotencyKey = `pool:${randomUUID()}`): NewLedgerTransaction {
  return tx("reward_pool", idempotencyKey, at, [{ account: LEDGER_WORLD, amount: -amount }, { account: REWARD_POOL, amount }], { memo: source });
}

/**
 * On submit: the job's greatest possible cost moves from the client's credit to its escrow. One escrow account per
 * client (not per job): the job's share is the amount of this transaction, until the job's `close:` transaction
 * returns or spends exactly that.
 */
export function holdEscrow(jobId: string, ownerId: string, amount: number, at: Date): NewLedgerTransaction {
  return tx("escrow", `escrow:${jobId}`, at, [{ account: clientCredit(ownerId), amount: -amount }, { account: clientEscrow(ownerId), amount }], { jobId });
}

/** A job's end, settled or refunded: one key, so a job is closed exactly once whichever way it ends. */
const closeKey = (jobId: string) => `close:${jobId}`;

/** A failed job: the whole escrow goes back. */
export function refundEscrow(jobId: string, ownerId: string, escrow: number, at: Date): NewLedgerTransaction {
  return tx("refund", closeKey(jobId), at, [{ account: clientEscrow(ownerId), amount: -escrow }, { account: clientCredit(ownerId), amount: escrow }], { jobId });
}

/**
 * A completed job: the escrow pays each receipt's amount (the fee to the platform, the rest to the segment's operator
 * as held earnings), the reward pool pays each receipt's reward to the operator, and what is left of the escrow goes
 * back to the client.
 */
export function settleJob(jobId: string, ownerId: string, escrow: number, receipts: readonly Receipt[], at: Date): NewLedgerTransaction {
  const charged = receipts.reduce((sum, r) => sum + r.amount, 0);
  const entries: LedgerEntry[] = [
    { account: clientEscrow(ownerId), amount: -escrow },
    { account: clientCredit(ownerId), amount: escrow - charged },
  ];
  for (const r of receipts) {
    entries.push({ account: operatorHeld(r.operator_id), amount: earnedBy(r) });
    entries.push({ account: PLATFORM_FEES, amount: r.fee });
    entries.push({ account: REWARD_POOL, amount: -r.reward });
  }
  return tx("settle", closeKey(jobId), at, entries, { jobId });
}

/** What a receipt pays its operator. */
export function earnedBy(r: Pick<Receipt, "amount" | "fee" | "reward">): number {
  return r.amount - r.fee + r.reward;
}

/** The hold ended: the receipt's earnings become available for payout. */
export function releaseReceipt(r: Receipt, at: Date): NewLedgerTransaction {
  const earned = earnedBy(r);
  return tx("release", `release:${r.receipt_id}`, at, [{ account: operatorHeld(r.operator_id), amount: -earned }, { account: operatorAvailable(r.operator_id), amount: earned }], { jobId: r.job_id });
}

/**
 * The node was quarantined (trust/design.md) while the receipt was held: the operator loses it. The client gets back
 * what it paid (fee included: it was served by a node the network judged a cheat), the pool gets its reward back.
 */
export function forfeitReceipt(r: Receipt, at: Date): NewLedgerTransaction {
  return tx(
    "forfeit",
    `forfeit:${r.receipt_id}`,
    at,
    [
      { account: operatorHeld(r.operator_id), amount: -earnedBy(r) },
      { account: PLATFORM_FEES, amount: -r.fee },
      { account: REWARD_POOL, amount: r.reward },
      { account: clientCredit(r.client_key_id), amount: r.amount },
    ],
    { jobId: r.job_id },
  );
}
