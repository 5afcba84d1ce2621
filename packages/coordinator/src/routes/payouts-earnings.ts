import type { EarningsView, PayoutBatchView, RecentReceiptView } from "@tessera/protocol";
import { earnedBy } from "../payments/ledger-rules.js";
import { usdc } from "../payments/prices.js";
import { operatorAvailable, operatorHeld, operatorPaid } from "../store/ledger-accounts.js";
import type { PayoutBatchRecord, ReceiptRecord, Store } from "../store/types.js";

/** How many of the newest receipts and batches the earnings view lists. */
export const RECENT_RECEIPTS = 20;
export const RECENT_BATCHES = 20;
/** Forfeited receipts summed for `forfeited`: the newest this many (a node forfeits rarely; more is not listed). */
const FORFEITED_SCAN = 1000;

export type { EarningsView, PayoutBatchView, RecentReceiptView } from "@tessera/protocol";

export interface EarningsDeps {
  store: Pick<Store, "getBalances" | "listPayoutBatches" | "listReceipts">;
}

function receiptView(r: ReceiptRecord): RecentReceiptView {
  return {
    receipt_id: r.receipt_id,
    job_id: r.job_id,
    segment: r.segment,
    node_id: r.node_id,
    model: r.model,
    input_tokens: r.input_tokens,
    output_tokens: r.output_tokens,
    earned: earnedBy(r),
    earned_usdc: usdc(earnedBy(r)),
    status: r.status,
    completed_at: r.completed_at,
    hold_until: r.holdUntil.toISOString(),
    payout_batch_id: r.payoutBatchId,
  };
}

function batchView(b: PayoutBatchRecord, operatorId: string): PayoutBatchView {
  const item = b.items.find((i) => i.operatorId === operatorId);
  const amount = item?.amount ?? 0;
  return {
    id: b.id,
    chain: b.chain,
    status: b.status,
    amount,
    amount_usdc: usdc(amount),
    address: item?.address ?? "",
    tx_hash: b.txHash,
    error: b.error,
    created_at: b.createdAt.toISOString(),
    updated_at: b.updatedAt.toISOString(),
  };
}

/** An operator's earnings from the ledger (balances) and its receipts and batches (the lists). */
export async function earningsOf(deps: EarningsDeps, operatorId: string): Promise<EarningsView> {
  const accounts = [operatorHeld(operatorId), operatorAvailable(operatorId), operatorPaid(operatorId)];
  const balances = await deps.store.getBalances(accounts);
  const [held, available, paid] = accounts.map((a) => balances.get(a) ?? 0) as [number, number, number];
  const open = await deps.store.listPayoutBatches({ status: ["created", "submitted"], operatorId, limit: 1000 });
  const inFlight = open.reduce((sum, b) => sum + (b.items.find((i) => i.operatorId === operatorId)?.amount ?? 0), 0);
  const forfeited = (await deps.store.listReceipts({ operatorId, status: "forfeited", limit: FORFEITED_SCAN })).reduce((sum, r) => sum + earnedBy(r), 0);
  const recent = await deps.store.listReceipts({ operatorId, limit: RECENT_RECEIPTS });
  // listPayoutBatches is oldest first: the newest are the tail.
  const batches = (await deps.store.listPayoutBatches({ operatorId, limit: 1000 })).slice(-RECENT_BATCHES).reverse();
  const lifetime = held + available + inFlight + paid;
  return {
    operator_id: operatorId,
    currency: "USDC",
    unit: "micro",
    held,
    held_usdc: usdc(held),
    available,
    available_usdc: usdc(available),
    in_flight: inFlight,
    in_flight_usdc: usdc(inFlight),
    paid,
    paid_usdc: usdc(paid),
    lifetime,
    lifetime_usdc: usdc(lifetime),
    forfeited,
    forfeited_usdc: usdc(forfeited),
    recent: recent.map(receiptView),
    batches: batches.map((b) => batchView(b, operatorId)),
  };
}
