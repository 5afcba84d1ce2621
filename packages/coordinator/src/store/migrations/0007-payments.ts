import type { Kysely, Migration } from "kysely";

/**
 * Payments (payments/design.md): a double-entry ledger in integer micro-USDC, signed receipts, payout addresses and
 * payout batches.
 *
 * - `ledger_transactions` is append-only; each has a unique idempotency key, so posting the same event twice (a retry,
 *   a second replica) is a no-op. Its `ledger_entries` sum to zero.
 * - `ledger_balances` is the running sum of each account's entries, updated in the same database transaction as the
 *   entries; every account except `world` (money entering or leaving the network) is kept at or above zero there.
 * - `receipts` hold hashes and counts, never text, so they outlive the job's content.
 */
export const payments: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("ledger_transactions")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("idempotency_key", "text", (c) => c.notNull().unique())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("job_id", "text")
      .addColumn("memo", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("ledger_entries")
      .addColumn("transaction_id", "text", (c) => c.notNull().references("ledger_transactions.id"))
      .addColumn("seq", "integer", (c) => c.notNull())
      .addColumn("account", "text", (c) => c.notNull())
      .addColumn("amount", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("ledger_entries_pk", ["transaction_id", "seq"])
      .execute();
    await db.schema.createIndex("ledger_entries_account").on("ledger_entries").columns(["account", "transaction_id"]).execute();
    await db.schema
      .createTable("ledger_balances")
      .addColumn("account", "text", (c) => c.primaryKey())
      .addColumn("balance", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("receipts")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("job_id", "text", (c) => c.notNull())
      .addColumn("segment", "integer", (c) => c.notNull())
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("operator_id", "text", (c) => c.notNull())
      .addColumn("client_key_id", "text", (c) => c.notNull())
      .addColumn("model", "text", (c) => c.notNull())
      .addColumn("model_sha256", "text")
      .addColumn("input_tokens", "integer", (c) => c.notNull())
      .addColumn("output_tokens", "integer", (c) => c.notNull())
      .addColumn("price_input_per_1k", "bigint", (c) => c.notNull())
      .addColumn("price_output_per_1k", "bigint", (c) => c.notNull())
      .addColumn("amount", "bigint", (c) => c.notNull())
      .addColumn("fee", "bigint", (c) => c.notNull())
      .addColumn("reward", "bigint", (c) => c.notNull())
      .addColumn("output_sha256", "text", (c) => c.notNull())
      .addColumn("result_commitment", "text")
      .addColumn("completed_at", "bigint", (c) => c.notNull())
      .addColumn("hold_until", "bigint", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("status_changed_at", "bigint", (c) => c.notNull())
      .addColumn("payout_batch_id", "text")
      .addColumn("platform_key", "text", (c) => c.notNull())
      .addColumn("platform_signature", "text", (c) => c.notNull())
      .addColumn("node_signature", "text")
      .addUniqueConstraint("receipts_job_segment", ["job_id", "segment"])
      .execute();
    await db.schema.createIndex("receipts_operator_status").on("receipts").columns(["operator_id", "status"]).execute();
    await db.schema.createIndex("receipts_status_hold").on("receipts").columns(["status", "hold_until"]).execute();
    await db.schema.createIndex("receipts_node_status").on("receipts").columns(["node_id", "status"]).execute();

    await db.schema
      .createTable("payout_addresses")
      .addColumn("operator_id", "text", (c) => c.notNull())
      .addColumn("chain", "text", (c) => c.notNull())
      .addColumn("address", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("payout_addresses_pk", ["operator_id", "chain"])
      .execute();
    await db.schema
      .createTable("payout_requests")
      .addColumn("operator_id", "text", (c) => c.primaryKey())
      .addColumn("requested_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("payout_batches")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("chain", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("total", "bigint", (c) => c.notNull())
      .addColumn("tx_hash", "text")
      .addColumn("error", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("payout_items")
      .addColumn("batch_id", "text", (c) => c.notNull().references("payout_batches.id"))
      .addColumn("operator_id", "text", (c) => c.notNull())
      .addColumn("address", "text", (c) => c.notNull())
      .addColumn("amount", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("payout_items_pk", ["batch_id", "operator_id"])
      .execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    for (const table of ["payout_items", "payout_batches", "payout_requests", "payout_addresses", "receipts", "ledger_balances", "ledger_entries", "ledger_transactions"]) {
      await db.schema.dropTable(table).execute();
    }
  },
};
