/**
 * The money answers of the public API, as the coordinator sends them (routes/billing.ts, routes/payouts*.ts) and the
 * CLI and dashboard read them. Micro-USDC figures are integers, each with an exact decimal USDC string beside it.
 */

/** An amount both ways: integer micro-USDC for programs, a decimal string for people. */
export interface MoneyAmount {
  micro: number;
  usdc: string;
}

/** `GET /api/v1/billing` (a client key): its credits, what running jobs hold, top-ups, and spend per UTC day (30 days). */
export interface BillingView {
  currency: "USDC";
  /** false: the coordinator keeps no ledger (`--ledger off`): jobs are free and nothing is recorded. */
  ledger: boolean;
  balance: MoneyAmount;
  /** Held in escrow for jobs running now. */
  held: MoneyAmount;
  /** `source`: the top-up's memo (who or what credited it), null when it has none. */
  top_ups: Array<{ at: string; amount: MoneyAmount; source: string | null }>;
  /** Oldest first; `receipts`: the jobs charged that day. */
  spend_by_day: Array<{ day: string; amount: MoneyAmount; receipts: number }>;
}

export interface RecentReceiptView {
  receipt_id: string;
  job_id: string;
  segment: number;
  node_id: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  /** amount − fee + reward: what this receipt earns the operator. */
  earned: number;
  earned_usdc: string;
  status: string;
  completed_at: string;
  hold_until: string;
  payout_batch_id: string | null;
}

export interface PayoutBatchView {
  id: string;
  chain: string;
  status: string;
  /** This operator's share of the batch. */
  amount: number;
  amount_usdc: string;
  address: string;
  tx_hash: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

/** `GET /api/v1/payouts/earnings` (signed by the operator key). */
export interface EarningsView {
  operator_id: string;
  currency: "USDC";
  unit: "micro";
  held: number;
  held_usdc: string;
  available: number;
  available_usdc: string;
  in_flight: number;
  in_flight_usdc: string;
  paid: number;
  paid_usdc: string;
  /** held + available + in_flight + paid: everything earned and not forfeited. */
  lifetime: number;
  lifetime_usdc: string;
  forfeited: number;
  forfeited_usdc: string;
  recent: RecentReceiptView[];
  batches: PayoutBatchView[];
}

/** The answer to a payout request (`POST /api/v1/payouts/requests`, 202): it is asked for; the next settlement pays it. */
export interface PayoutRequestView {
  chain: string;
  address: string;
  available: number;
  available_usdc: string;
  requested_at: string;
}
