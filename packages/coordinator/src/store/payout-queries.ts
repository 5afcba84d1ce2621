import type { Kysely, Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, toMs } from "./codec.js";
import { operatorAvailable, operatorPaid, payoutInFlight } from "./ledger-accounts.js";
import { postWithin } from "./ledger-queries.js";
import type { Database, PayoutBatchesTable } from "./schema.js";
import type { PayoutAddressRecord, PayoutBatchRecord, PayoutBatchStatus, PayoutItem } from "./types.js";

/**
 * Payout addresses, requests and batches (payments/design.md). A batch's life:
 *   created   — its receipts are tied to it and their sum moved `operator:<op>:available` → `payout:<batch>:in_flight`;
 *   submitted — the settling transaction's hash is recorded;
 *   confirmed — settled on chain: in-flight → `operator:<op>:paid`, its receipts `paid`;
 *   failed    — will not settle: in-flight → back to available, its receipts free for a later batch.
 * Every money move is posted in the same database transaction as the state change it belongs to, under an
 * idempotency key of the batch (`payout:<batch>:create:<op>`, `payout:<batch>:confirm`, `payout:<batch>:fail`).
 */

const MAX_LIST_LIMIT = 1000;
const BATCH_STATUSES: readonly PayoutBatchStatus[] = ["created", "submitted", "confirmed", "failed"];

type Db = Kysely<Database>;

export async function setPayoutAddress(db: Db, record: PayoutAddressRecord): Promise<void> {
  checkKeyText(record.operatorId, "operatorId");
  checkKeyText(record.chain, "chain");
  checkKeyText(record.address, "address");
  const at = toMs(record.updatedAt, "updatedAt");
  await db
    .insertInto("payout_addresses")
    .values({ operator_id: record.operatorId, chain: record.chain, address: record.address, updated_at: at })
    .onConflict((oc) => oc.columns(["operator_id", "chain"]).doUpdateSet({ address: record.address, updated_at: at }))
    .execute();
}

export async function listPayoutAddresses(db: Db, operatorId: string): Promise<PayoutAddressRecord[]> {
  const rows = await db
    .selectFrom("payout_addresses")
    .selectAll()
    .where("operator_id", "=", operatorId)
    .orderBy("updated_at", "desc")
    .orderBy("chain")
    .execute();
  return rows.map((r) => ({ operatorId: r.operator_id, chain: r.chain, address: r.address, updatedAt: fromMs(r.updated_at) }));
}

/** A second request before the first is served keeps the first one's time (its place in the queue). */
export async function requestPayout(db: Db, operatorId: string, at: Date): Promise<void> {
  checkKeyText(operatorId, "operatorId");
  await db
    .insertInto("payout_requests")
    .values({ operator_id: operatorId, requested_at: toMs(at, "at") })
    .onConflict((oc) => oc.column("operator_id").doNothing())
    .execute();
}

export async function listPayoutRequests(db: Db): Promise<Array<{ operatorId: string; requestedAt: Date }>> {
  const rows = await db.selectFrom("payout_requests").selectAll().orderBy("requested_at").orderBy("operator_id").execute();
  return rows.map((r) => ({ operatorId: r.operator_id, requestedAt: fromMs(r.requested_at) }));
}

/**
 * Claims each operator's free available receipts for the batch with one conditional UPDATE, so two replicas making
 * batches at once never claim the same receipt (on PostgreSQL the second UPDATE waits for the first and then finds the
 * rows taken). An operator whose claimed sum is below `minimum` is released again in the same transaction.
 */
export async function createPayoutBatch(
  db: Db,
  batch: { id: string; chain: string; operators: Array<{ operatorId: string; address: string }>; minimum: number; at: Date },
): Promise<PayoutBatchRecord | undefined> {
  checkKeyText(batch.id, "batch id");
  checkKeyText(batch.chain, "chain");
  if (!Number.isSafeInteger(batch.minimum) || batch.minimum < 1) throw new TesseraError("bad_request", `a payout minimum is a whole number of micro-USDC, at least 1; got ${batch.minimum}`);
  const seen = new Set<string>();
  for (const o of batch.operators) {
    if (seen.has(o.operatorId)) throw new TesseraError("bad_request", `operator ${o.operatorId} is named twice in batch ${batch.id}`);
    seen.add(o.operatorId);
    checkKeyText(o.address, "address");
  }
  const at = toMs(batch.at, "at");
  const made = await db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto("payout_batches")
      .values({ id: batch.id, chain: batch.chain, status: "created", total: 0, tx_hash: null, error: null, created_at: at, updated_at: at })
      .onConflict((oc) => oc.column("id").doNothing())
      .returning("id")
      .executeTakeFirst();
    if (!inserted) throw new TesseraError("conflict", `payout batch ${batch.id} exists already`);
    const items: PayoutItem[] = [];
    for (const { operatorId, address } of batch.operators) {
      const claimed = await trx
        .updateTable("receipts")
        .set({ payout_batch_id: batch.id })
        .where("operator_id", "=", operatorId)
        .where("status", "=", "available")
        .where("payout_batch_id", "is", null)
        .returning(["amount", "fee", "reward"])
        .execute();
      const amount = claimed.reduce((sum, r) => sum + Number(r.amount) - Number(r.fee) + Number(r.reward), 0);
      if (amount < batch.minimum) {
        if (claimed.length > 0) {
          await trx.updateTable("receipts").set({ payout_batch_id: null }).where("payout_batch_id", "=", batch.id).where("operator_id", "=", operatorId).execute();
        }
        continue;
      }
      // The available account holds exactly the sum of the free available receipts; if it held less, this throws
      // insufficient_funds and the whole batch rolls back rather than pay money the ledger does not have.
      await postWithin(trx, {
        id: `${batch.id}:create:${operatorId}`,
        idempotencyKey: `payout:${batch.id}:create:${operatorId}`,
        kind: "payout.create",
        memo: `payout batch ${batch.id} on ${batch.chain} to ${address}`,
        createdAt: batch.at,
        entries: [
          { account: operatorAvailable(operatorId), amount: -amount },
          { account: payoutInFlight(batch.id), amount },
        ],
      });
      await trx.insertInto("payout_items").values({ batch_id: batch.id, operator_id: operatorId, address, amount }).execute();
      items.push({ operatorId, address, amount });
    }
    if (batch.operators.length > 0) {
      await trx.deleteFrom("payout_requests").where("operator_id", "in", batch.operators.map((o) => o.operatorId)).execute();
    }
    if (items.length === 0) {
      await trx.deleteFrom("payout_batches").where("id", "=", batch.id).execute();
      return false;
    }
    const total = items.reduce((sum, i) => sum + i.amount, 0);
    await trx.updateTable("payout_batches").set({ total }).where("id", "=", batch.id).execute();
    return true;
  });
  return made ? getPayoutBatch(db, batch.id) : undefined;
}

async function batchRow(db: Db, id: string): Promise<Selectable<PayoutBatchesTable>> {
  const row = await db.selectFrom("payout_batches").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) throw new TesseraError("not_found", `no payout batch ${id}`);
  return row;
}

/**
 * Records the transaction that settles the batch. A `created` batch becomes `submitted`; a `submitted` one takes the
 * new hash (the worker sent again after the first transaction was lost). A finished batch is refused with `conflict`.
 */
export async function markPayoutBatchSubmitted(db: Db, id: string, txHash: string, at: Date): Promise<void> {
  checkKeyText(txHash, "txHash");
  const result = await db
    .updateTable("payout_batches")
    .set({ status: "submitted", tx_hash: txHash, updated_at: toMs(at, "at") })
    .where("id", "=", id)
    .where("status", "in", ["created", "submitted"])
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) > 0) return;
  const row = await batchRow(db, id);
  throw new TesseraError("conflict", `payout batch ${id} is ${row.status}; it takes no transaction now`);
}

/** False when the batch was confirmed before; `conflict` for a failed batch (its money went back already). */
export async function confirmPayoutBatch(db: Db, id: string, txHash: string, at: Date): Promise<boolean> {
  checkKeyText(txHash, "txHash");
  const ms = toMs(at, "at");
  return db.transaction().execute(async (trx) => {
    const row = await batchRow(trx, id);
    if (row.status === "confirmed") return false;
    if (row.status === "failed") throw new TesseraError("conflict", `payout batch ${id} failed earlier and its money returned to the operators; it cannot be confirmed`);
    const moved = await trx
      .updateTable("payout_batches")
      .set({ status: "confirmed", tx_hash: txHash, error: null, updated_at: ms })
      .where("id", "=", id)
      .where("status", "in", ["created", "submitted"])
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) === 0) return false;
    const items = await itemsOf(trx, [id]);
    await postWithin(trx, {
      id: `${id}:confirm`,
      idempotencyKey: `payout:${id}:confirm`,
      kind: "payout.confirm",
      memo: `payout batch ${id} settled in ${txHash}`,
      createdAt: at,
      entries: (items.get(id) ?? []).flatMap((i) => [
        { account: payoutInFlight(id), amount: -i.amount },
        { account: operatorPaid(i.operatorId), amount: i.amount },
      ]),
    });
    await trx.updateTable("receipts").set({ status: "paid", status_changed_at: ms }).where("payout_batch_id", "=", id).where("status", "=", "available").execute();
    return true;
  });
}

/** False when the batch failed before; `conflict` for a confirmed batch (it was paid). */
export async function failPayoutBatch(db: Db, id: string, error: string, at: Date): Promise<boolean> {
  const ms = toMs(at, "at");
  return db.transaction().execute(async (trx) => {
    const row = await batchRow(trx, id);
    if (row.status === "failed") return false;
    if (row.status === "confirmed") throw new TesseraError("conflict", `payout batch ${id} is confirmed (paid on chain); it cannot fail`);
    const moved = await trx
      .updateTable("payout_batches")
      .set({ status: "failed", error: error.slice(0, 2000), updated_at: ms })
      .where("id", "=", id)
      .where("status", "in", ["created", "submitted"])
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) === 0) return false;
    const items = await itemsOf(trx, [id]);
    await postWithin(trx, {
      id: `${id}:fail`,
      idempotencyKey: `payout:${id}:fail`,
      kind: "payout.fail",
      memo: `payout batch ${id} failed: ${error.slice(0, 200)}`,
      createdAt: at,
      entries: (items.get(id) ?? []).flatMap((i) => [
        { account: payoutInFlight(id), amount: -i.amount },
        { account: operatorAvailable(i.operatorId), amount: i.amount },
      ]),
    });
    await trx.updateTable("receipts").set({ payout_batch_id: null }).where("payout_batch_id", "=", id).execute();
    return true;
  });
}

async function itemsOf(db: Db, batchIds: readonly string[]): Promise<Map<string, PayoutItem[]>> {
  const map = new Map<string, PayoutItem[]>();
  if (batchIds.length === 0) return map;
  const rows = await db.selectFrom("payout_items").selectAll().where("batch_id", "in", [...batchIds]).orderBy("batch_id").orderBy("operator_id").execute();
  for (const r of rows) {
    const list = map.get(r.batch_id) ?? [];
    list.push({ operatorId: r.operator_id, address: r.address, amount: Number(r.amount) });
    map.set(r.batch_id, list);
  }
  return map;
}

function toBatchRecord(row: Selectable<PayoutBatchesTable>, items: PayoutItem[]): PayoutBatchRecord {
  return {
    id: row.id,
    chain: row.chain,
    status: row.status as PayoutBatchStatus,
    total: Number(row.total),
    txHash: row.tx_hash,
    error: row.error,
    createdAt: fromMs(row.created_at),
    updatedAt: fromMs(row.updated_at),
    items,
  };
}

export async function getPayoutBatch(db: Db, id: string): Promise<PayoutBatchRecord | undefined> {
  const row = await db.selectFrom("payout_batches").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) return undefined;
  return toBatchRecord(row, (await itemsOf(db, [id])).get(id) ?? []);
}

export async function listPayoutBatches(
  db: Db,
  filter: { status?: readonly PayoutBatchStatus[]; operatorId?: string; limit: number },
): Promise<PayoutBatchRecord[]> {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > MAX_LIST_LIMIT) {
    throw new TesseraError("bad_request", `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  for (const s of filter.status ?? []) {
    if (!BATCH_STATUSES.includes(s)) throw new TesseraError("bad_request", `"${s}" is not a payout batch status: give one of ${BATCH_STATUSES.join(", ")}`);
  }
  let query = db.selectFrom("payout_batches").selectAll();
  if (filter.status !== undefined) {
    if (filter.status.length === 0) return [];
    query = query.where("status", "in", [...filter.status]);
  }
  if (filter.operatorId !== undefined) {
    const operatorId = filter.operatorId;
    query = query.where("id", "in", (eb) => eb.selectFrom("payout_items").select("batch_id").where("operator_id", "=", operatorId));
  }
  const rows = await query.orderBy("created_at").orderBy("id").limit(filter.limit).execute();
  const items = await itemsOf(db, rows.map((r) => r.id));
  return rows.map((r) => toBatchRecord(r, items.get(r.id) ?? []));
}
