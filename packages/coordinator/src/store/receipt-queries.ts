import { type Kysely, type Selectable, sql } from "kysely";
import { RECEIPT_STATUSES, RECEIPT_VERSION, type ReceiptStatus, TesseraError } from "@tessera/protocol";
import { fromMs, mapConstraintError, toMs } from "./codec.js";
import { postManyWithin, postWithin } from "./ledger-queries.js";
import type { Database, ReceiptsTable } from "./schema.js";
import type { NewLedgerTransaction, NewReceipt, ReceiptFilter, ReceiptRecord, ReceiptTransition } from "./types.js";

const MAX_LIST_LIMIT = 1000;

function toRecord(row: Selectable<ReceiptsTable>): ReceiptRecord {
  return {
    v: RECEIPT_VERSION,
    receipt_id: row.id,
    job_id: row.job_id,
    segment: Number(row.segment),
    node_id: row.node_id,
    operator_id: row.operator_id,
    client_key_id: row.client_key_id,
    model: row.model,
    model_sha256: row.model_sha256,
    input_tokens: Number(row.input_tokens),
    output_tokens: Number(row.output_tokens),
    price: { input_per_1k: Number(row.price_input_per_1k), output_per_1k: Number(row.price_output_per_1k) },
    amount: Number(row.amount),
    fee: Number(row.fee),
    reward: Number(row.reward),
    output_sha256: row.output_sha256,
    result_commitment: row.result_commitment,
    completed_at: new Date(Number(row.completed_at)).toISOString(),
    platform_key: row.platform_key,
    status: row.status as ReceiptStatus,
    platform_signature: row.platform_signature,
    node_signature: row.node_signature,
    holdUntil: fromMs(row.hold_until),
    statusChangedAt: fromMs(row.status_changed_at),
    payoutBatchId: row.payout_batch_id,
  };
}

function toRow(entry: NewReceipt): ReceiptsTable {
  const r = entry.receipt;
  const completedAt = Date.parse(r.completed_at);
  if (!Number.isFinite(completedAt)) throw new TesseraError("bad_request", `receipt ${r.receipt_id}: completed_at is not a date`);
  return {
    id: r.receipt_id,
    job_id: r.job_id,
    segment: r.segment,
    node_id: r.node_id,
    operator_id: r.operator_id,
    client_key_id: r.client_key_id,
    model: r.model,
    model_sha256: r.model_sha256,
    input_tokens: r.input_tokens,
    output_tokens: r.output_tokens,
    price_input_per_1k: r.price.input_per_1k,
    price_output_per_1k: r.price.output_per_1k,
    amount: r.amount,
    fee: r.fee,
    reward: r.reward,
    output_sha256: r.output_sha256,
    result_commitment: r.result_commitment,
    completed_at: completedAt,
    hold_until: toMs(entry.holdUntil, "holdUntil"),
    status: r.status,
    status_changed_at: completedAt,
    payout_batch_id: null,
    platform_key: r.platform_key,
    platform_signature: r.platform_signature,
    node_signature: r.node_signature,
  };
}

/** The job's charge, fees, earnings and refund, and its receipts: all or nothing, once. */
export async function settleJob(db: Kysely<Database>, tx: NewLedgerTransaction, receipts: readonly NewReceipt[]): Promise<boolean> {
  return (await settleJobs(db, [{ tx, receipts }]))[0]!;
}

/** Several jobs' settlements in one database transaction: one commit for the lot (payments/group-commit.ts). */
export async function settleJobs(db: Kysely<Database>, jobs: ReadonlyArray<{ tx: NewLedgerTransaction; receipts: readonly NewReceipt[] }>): Promise<boolean[]> {
  const prepared = jobs.map((j) => ({ tx: j.tx, rows: j.receipts.map(toRow) }));
  try {
    return await db.transaction().execute(async (trx) => {
      const posted = await postManyWithin(trx, prepared.map((j) => j.tx));
      const rows = prepared.flatMap((j, i) => (posted[i] ? j.rows : []));
      // 25 columns a receipt: 200 rows a statement stays under every driver's bound-parameter limit.
      for (let i = 0; i < rows.length; i += 200) await trx.insertInto("receipts").values(rows.slice(i, i + 200)).execute();
      return posted;
    });
  } catch (err) {
    throw mapConstraintError(err, { conflict: `a receipt of job ${prepared.map((j) => j.tx.jobId ?? "?").join(", ")} exists already` });
  }
}

export async function getReceipt(db: Kysely<Database>, id: string): Promise<ReceiptRecord | undefined> {
  const row = await db.selectFrom("receipts").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export async function listReceipts(db: Kysely<Database>, filter: ReceiptFilter): Promise<ReceiptRecord[]> {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > MAX_LIST_LIMIT) {
    throw new TesseraError("bad_request", `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  if (filter.status !== undefined && !RECEIPT_STATUSES.includes(filter.status)) {
    throw new TesseraError("bad_request", `status must be one of ${RECEIPT_STATUSES.join(", ")}`);
  }
  let query = db.selectFrom("receipts").selectAll();
  if (filter.operatorId !== undefined) query = query.where("operator_id", "=", filter.operatorId);
  if (filter.nodeId !== undefined) query = query.where("node_id", "=", filter.nodeId);
  if (filter.jobId !== undefined) query = query.where("job_id", "=", filter.jobId);
  if (filter.clientKeyId !== undefined) query = query.where("client_key_id", "=", filter.clientKeyId);
  if (filter.status !== undefined) query = query.where("status", "=", filter.status);
  const rows = await query.orderBy("completed_at", "desc").orderBy("id", "desc").limit(filter.limit).execute();
  return rows.map(toRecord);
}

export async function listClientCharges(db: Kysely<Database>, clientKeyId: string, since: Date): Promise<Array<{ completedAt: Date; amount: number }>> {
  const rows = await db
    .selectFrom("receipts")
    .select(["completed_at", "amount"])
    .where("client_key_id", "=", clientKeyId)
    .where("completed_at", ">=", toMs(since, "since"))
    .where("status", "!=", "forfeited")
    .orderBy("completed_at")
    .execute();
  return rows.map((r) => ({ completedAt: fromMs(r.completed_at), amount: Number(r.amount) }));
}

/** The most receipts one `getReceipts` or `setReceiptNodeSignatures` call takes (three bound parameters each at most). */
export const RECEIPT_BATCH_LIMIT = 500;

function checkBatch(size: number, what: string): void {
  if (size > RECEIPT_BATCH_LIMIT) throw new TesseraError("bad_request", `at most ${RECEIPT_BATCH_LIMIT} ${what} at once, got ${size}`);
}

/** The receipts of `ids` that exist, in no particular order. */
export async function getReceipts(db: Kysely<Database>, ids: readonly string[]): Promise<ReceiptRecord[]> {
  checkBatch(ids.length, "receipts");
  if (ids.length === 0) return [];
  const rows = await db.selectFrom("receipts").selectAll().where("id", "in", ids).execute();
  return rows.map(toRecord);
}

/**
 * Stores each node signature on its receipt unless the receipt has one, in one statement; returns the ids it stored.
 * Refuses (`bad_request`, nothing stored) a signature that is not 128 lowercase hex digits or an id given twice.
 */
export async function setReceiptNodeSignatures(db: Kysely<Database>, signatures: ReadonlyArray<{ id: string; signature: string }>): Promise<string[]> {
  checkBatch(signatures.length, "signatures");
  const ids = new Set<string>();
  for (const { id, signature } of signatures) {
    if (!/^[0-9a-f]{128}$/.test(signature)) throw new TesseraError("bad_request", "a node signature is 128 lowercase hex digits");
    if (ids.has(id)) throw new TesseraError("bad_request", `receipt ${id} is given twice`);
    ids.add(id);
  }
  if (signatures.length === 0) return [];
  const signatureOf = sql<string>`case ${sql.ref("id")} ${sql.join(
    signatures.map(({ id, signature }) => sql`when ${id} then ${signature}`),
    sql` `,
  )} end`;
  const rows = await db
    .updateTable("receipts")
    .set({ node_signature: signatureOf })
    .where("id", "in", [...ids])
    .where("node_signature", "is", null)
    .returning("id")
    .execute();
  return rows.map((r) => r.id);
}

export async function listUnsignedReceipts(db: Kysely<Database>, nodeId: string, limit: number): Promise<ReceiptRecord[]> {
  const rows = await db
    .selectFrom("receipts")
    .selectAll()
    .where("node_id", "=", nodeId)
    .where("node_signature", "is", null)
    .orderBy("completed_at")
    .limit(Math.max(1, Math.min(limit, MAX_LIST_LIMIT)))
    .execute();
  return rows.map(toRecord);
}

export async function listReleasableReceipts(db: Kysely<Database>, now: Date, limit: number): Promise<ReceiptRecord[]> {
  const rows = await db
    .selectFrom("receipts")
    .selectAll()
    .where("status", "=", "held")
    .where("hold_until", "<=", toMs(now, "now"))
    .orderBy("hold_until")
    .limit(Math.max(1, Math.min(limit, MAX_LIST_LIMIT)))
    .execute();
  return rows.map(toRecord);
}

export async function transitionReceipt(db: Kysely<Database>, t: ReceiptTransition, at: Date): Promise<boolean> {
  if (!RECEIPT_STATUSES.includes(t.to)) throw new TesseraError("bad_request", `status must be one of ${RECEIPT_STATUSES.join(", ")}`);
  const atMs = toMs(at, "at");
  return db.transaction().execute(async (trx) => {
    const moved = await trx
      .updateTable("receipts")
      .set({ status: t.to, status_changed_at: atMs })
      .where("id", "=", t.receiptId)
      .where("status", "=", t.from)
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) === 0) return false;
    await postWithin(trx, t.transaction);
    return true;
  });
}
