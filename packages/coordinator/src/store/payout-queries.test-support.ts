/** Seeds receipts and their money for payout tests (test-only). */
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { RECEIPT_VERSION, type Receipt, type ReceiptStatus } from "@tessera/protocol";
import { LEDGER_WORLD, operatorAvailable, operatorHeld } from "./ledger-accounts.js";
import type { Store } from "./types.js";

export const SEED_AT = new Date(Date.UTC(2026, 5, 1));
const hex = (c: string, n: number) => c.repeat(n);

let jobSeq = 0;

/**
 * Seeds one receipt for `operatorId` the way job billing does: money enters from `world` and lands in the account that
 * matches the receipt's status (earned = amount − fee + reward).
 */
export async function seedReceipt(store: Store, operatorId: string, earned: { amount: number; fee?: number; reward?: number }, status: ReceiptStatus = "available"): Promise<string> {
  const fee = earned.fee ?? 0;
  const reward = earned.reward ?? 0;
  const value = earned.amount - fee + reward;
  const jobId = `job-${++jobSeq}`;
  const receipt: Receipt = {
    v: RECEIPT_VERSION,
    receipt_id: randomUUID(),
    job_id: jobId,
    segment: 1,
    node_id: operatorId,
    operator_id: operatorId,
    client_key_id: "key:test",
    model: "tiny",
    model_sha256: null,
    input_tokens: 10,
    output_tokens: 20,
    price: { input_per_1k: 100, output_per_1k: 400 },
    amount: earned.amount,
    fee,
    reward,
    output_sha256: hex("0", 64),
    result_commitment: null,
    completed_at: SEED_AT.toISOString(),
    platform_key: hex("f", 64),
    status,
    platform_signature: hex("1", 128),
    node_signature: null,
  };
  const account = status === "held" ? operatorHeld(operatorId) : operatorAvailable(operatorId);
  const posted = await store.settleJob(
    { id: randomUUID(), idempotencyKey: `seed:${jobId}`, kind: "test.seed", jobId, createdAt: SEED_AT, entries: [{ account: LEDGER_WORLD, amount: -value }, { account, amount: value }] },
    [{ receipt, holdUntil: SEED_AT }],
  );
  expect(posted).toBe(true);
  return receipt.receipt_id;
}

export async function balanceOf(store: Store, account: string): Promise<number> {
  return (await store.getBalances([account])).get(account)!;
}

export async function expectLedgerSound(store: Store): Promise<void> {
  const audit = await store.auditLedger();
  expect({ sum: audit.sum, unbalanced: audit.unbalanced, negative: audit.negative, drifted: audit.drifted }).toEqual({ sum: 0, unbalanced: [], negative: [], drifted: [] });
}
