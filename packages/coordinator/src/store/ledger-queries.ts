import { type Kysely, sql } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, toMs } from "./codec.js";
import { LEDGER_WORLD } from "./ledger-accounts.js";
import type { Database } from "./schema.js";
import type { LedgerAudit, LedgerBalance, LedgerTransactionRecord, NewLedgerTransaction } from "./types.js";

const MAX_LIST_LIMIT = 1000;

function validate(tx: NewLedgerTransaction): Map<string, number> {
  checkKeyText(tx.idempotencyKey, "idempotencyKey");
  let sum = 0;
  // One balance change per account: a transaction may name an account twice (a fee and a refund to the same place).
  const byAccount = new Map<string, number>();
  for (const entry of tx.entries) {
    if (!Number.isSafeInteger(entry.amount)) throw new TesseraError("bad_request", `ledger amounts are whole micro-units; got ${entry.amount} for ${entry.account}`);
    checkKeyText(entry.account, "account");
    sum += entry.amount;
    byAccount.set(entry.account, (byAccount.get(entry.account) ?? 0) + entry.amount);
  }
  if (sum !== 0) throw new TesseraError("bad_request", `ledger transaction ${tx.idempotencyKey} does not balance (its entries sum to ${sum})`);
  return byAccount;
}

/** Rows per multi-row statement: well under SQLite's and PostgreSQL's bound-parameter limits. */
const ROWS_PER_STATEMENT = 500;

function chunks<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) out.push(rows.slice(i, i + ROWS_PER_STATEMENT));
  return out;
}

/**
 * Posts `txs` inside the caller's database transaction, in a fixed number of statements whatever their count: the
 * transaction rows (each idempotency key unique: one posted before, or earlier in the same list, is skipped and
 * reported false), all their entries, and every touched account's running balance, checked. Balances are checked
 * once, on the net change of the whole list (a list is posted as a unit, in no particular order). Throws
 * `insufficient_funds` when an account other than `world` would end below zero; the caller's transaction then rolls
 * back, so nothing of it is kept.
 */
export async function postManyWithin(trx: Kysely<Database>, txs: readonly NewLedgerTransaction[]): Promise<boolean[]> {
  const changes = txs.map(validate);
  if (txs.length === 0) return [];
  const inserted = new Set<string>();
  for (const part of chunks(txs)) {
    const rows = await trx
      .insertInto("ledger_transactions")
      .values(part.map((tx) => ({ id: tx.id, idempotency_key: tx.idempotencyKey, kind: tx.kind, job_id: tx.jobId ?? null, memo: tx.memo ?? null, created_at: toMs(tx.createdAt, "createdAt") })))
      .onConflict((oc) => oc.column("idempotency_key").doNothing())
      .returning("id")
      .execute();
    for (const row of rows) inserted.add(row.id);
  }
  // A key repeated within the list inserted its first row only: that transaction is the one posted.
  const posted = txs.map((tx) => inserted.has(tx.id));
  const entries = txs.flatMap((tx, i) => (posted[i] ? tx.entries.map((e, seq) => ({ transaction_id: tx.id, seq, account: e.account, amount: e.amount })) : []));
  for (const part of chunks(entries)) await trx.insertInto("ledger_entries").values(part).execute();
  const net = new Map<string, number>();
  txs.forEach((_, i) => {
    if (posted[i]) for (const [account, amount] of changes[i]!) net.set(account, (net.get(account) ?? 0) + amount);
  });
  const moved = [...net].filter(([, amount]) => amount !== 0);
  const at = Math.max(...txs.map((tx) => toMs(tx.createdAt, "createdAt")));
  for (const part of chunks(moved)) {
    const rows = await trx
      .insertInto("ledger_balances")
      .values(part.map(([account, amount]) => ({ account, balance: amount, updated_at: at })))
      .onConflict((oc) => oc.column("account").doUpdateSet({ balance: sql`ledger_balances.balance + excluded.balance`, updated_at: at }))
      .returning(["account", "balance"])
      .execute();
    for (const row of rows) {
      if (Number(row.balance) < 0 && row.account !== LEDGER_WORLD) {
        const amount = net.get(row.account)!;
        throw new TesseraError("insufficient_funds", `${row.account} holds ${(Number(row.balance) - amount) / 1e6} USDC, less than the ${-amount / 1e6} USDC this needs`);
      }
    }
  }
  return posted;
}

/** One transaction posted inside the caller's (see `postManyWithin`). */
export async function postWithin(trx: Kysely<Database>, tx: NewLedgerTransaction): Promise<boolean> {
  return (await postManyWithin(trx, [tx]))[0]!;
}

export function postTransaction(db: Kysely<Database>, tx: NewLedgerTransaction): Promise<boolean> {
  return db.transaction().execute((trx) => postWithin(trx, tx));
}

export function postTransactions(db: Kysely<Database>, txs: readonly NewLedgerTransaction[]): Promise<boolean[]> {
  return db.transaction().execute((trx) => postManyWithin(trx, txs));
}

export async function getBalances(db: Kysely<Database>, accounts: readonly string[]): Promise<Map<string, number>> {
  const balances = new Map<string, number>(accounts.map((a) => [a, 0]));
  if (accounts.length === 0) return balances;
  const rows = await db.selectFrom("ledger_balances").select(["account", "balance"]).where("account", "in", [...accounts]).execute();
  for (const row of rows) balances.set(row.account, Number(row.balance));
  return balances;
}

export async function listBalances(db: Kysely<Database>, prefix: string): Promise<LedgerBalance[]> {
  // A range instead of LIKE: account names may hold `%` or `_`, and a range uses the primary key on both dialects.
  const rows = await db
    .selectFrom("ledger_balances")
    .selectAll()
    .where("account", ">=", prefix)
    .where("account", "<", `${prefix}\uffff`)
    .orderBy("account")
    .execute();
  return rows.map((r) => ({ account: r.account, balance: Number(r.balance), updatedAt: fromMs(r.updated_at) }));
}

export async function listTransactions(db: Kysely<Database>, account: string, filter: { since?: Date; limit: number }): Promise<LedgerTransactionRecord[]> {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > MAX_LIST_LIMIT) {
    throw new TesseraError("bad_request", `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  let query = db
    .selectFrom("ledger_transactions as t")
    .selectAll("t")
    .where("t.id", "in", (eb) => eb.selectFrom("ledger_entries").select("transaction_id").where("account", "=", account));
  if (filter.since) query = query.where("t.created_at", ">=", toMs(filter.since, "since"));
  const txs = await query.orderBy("t.created_at", "desc").orderBy("t.id", "desc").limit(filter.limit).execute();
  if (txs.length === 0) return [];
  const entries = await db
    .selectFrom("ledger_entries")
    .selectAll()
    .where("transaction_id", "in", txs.map((t) => t.id))
    .orderBy("transaction_id")
    .orderBy("seq")
    .execute();
  return txs.map((t) => ({
    id: t.id,
    idempotencyKey: t.idempotency_key,
    kind: t.kind,
    jobId: t.job_id,
    memo: t.memo,
    createdAt: fromMs(t.created_at),
    entries: entries.filter((e) => e.transaction_id === t.id).map((e) => ({ account: e.account, amount: Number(e.amount) })),
  }));
}

/**
 * Escrow transactions without their job's `close:` transaction. The job's share is the escrow transaction's positive
 * leg (the client's escrow account); `close:<job>` is the only key that spends or returns it (payments/ledger-rules.ts).
 */
export async function openEscrows(db: Kysely<Database>, filter: { jobId?: string; limit: number }): Promise<Array<{ jobId: string; amount: number; heldAt: Date; account: string }>> {
  let query = db
    .selectFrom("ledger_transactions as t")
    .innerJoin("ledger_entries as e", "e.transaction_id", "t.id")
    .select(["t.job_id", "e.amount", "t.created_at", "e.account"])
    .where("t.kind", "=", "escrow")
    .where("e.amount", ">", 0)
    .where((eb) => eb.not(eb.exists(eb.selectFrom("ledger_transactions as c").select("c.id").where("c.idempotency_key", "=", sql<string>`'close:' || ${eb.ref("t.job_id")}`))));
  if (filter.jobId !== undefined) query = query.where("t.idempotency_key", "=", `escrow:${filter.jobId}`);
  const rows = await query.orderBy("t.created_at").limit(Math.max(1, Math.min(filter.limit, 100_000))).execute();
  return rows.map((r) => ({ jobId: r.job_id!, amount: Number(r.amount), heldAt: fromMs(r.created_at), account: r.account }));
}

export async function auditLedger(db: Kysely<Database>): Promise<LedgerAudit> {
  const balances = await db.selectFrom("ledger_balances").selectAll().execute();
  const transactions = await db.selectFrom("ledger_transactions").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  const unbalanced = await db
    .selectFrom("ledger_entries")
    .select("transaction_id")
    .groupBy("transaction_id")
    .having((eb) => eb.fn.sum<number>("amount"), "<>", 0)
    .execute();
  const sums = await db.selectFrom("ledger_entries").select(["account", (eb) => eb.fn.sum<number>("amount").as("total")]).groupBy("account").execute();
  const stored = new Map(balances.map((b) => [b.account, Number(b.balance)]));
  const drifted = new Set<string>();
  for (const s of sums) if ((stored.get(s.account) ?? 0) !== Number(s.total)) drifted.add(s.account);
  for (const [account, balance] of stored) if (balance !== 0 && !sums.some((s) => s.account === account)) drifted.add(account);
  return {
    sum: balances.reduce((total, b) => total + Number(b.balance), 0),
    transactions: Number(transactions.n),
    unbalanced: unbalanced.map((u) => u.transaction_id),
    negative: balances
      .filter((b) => Number(b.balance) < 0 && b.account !== LEDGER_WORLD)
      .map((b) => ({ account: b.account, balance: Number(b.balance), updatedAt: fromMs(b.updated_at) })),
    drifted: [...drifted].sort(),
  };
}
