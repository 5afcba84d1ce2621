import { sql, type Kysely, type Migration } from "kysely";

/**
 * Operators and admission: who a node counts under, whether that operator is admitted, the join tokens that admit
 * new ones, and node keys retired by rotation. Nodes registered before this version become their own operators,
 * admitted (they were already serving): an upgrade locks nobody out.
 */
export const operators: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("operators")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("admitted_via", "text", (c) => c.notNull())
      .addColumn("join_token_id", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("status_changed_at", "bigint", (c) => c.notNull())
      .addColumn("status_reason", "text")
      .execute();
    // The coordinator polls for operators whose status changed (a ban from the CLI takes effect in seconds).
    await db.schema.createIndex("operators_status_changed").on("operators").column("status_changed_at").execute();

    await db.schema
      .createTable("join_tokens")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("token_sha256", "text", (c) => c.notNull().unique())
      .addColumn("note", "text")
      .addColumn("max_uses", "integer", (c) => c.notNull())
      .addColumn("uses", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("revoked_at", "bigint")
      .execute();

    await db.schema.alterTable("nodes").addColumn("operator_id", "text").execute();
    await db.schema.alterTable("nodes").addColumn("delegation_expires_at", "bigint").execute();
    await db.schema.alterTable("nodes").addColumn("retired_at", "bigint").execute();
    await db.schema.alterTable("nodes").addColumn("successor_id", "text").execute();
    await sql`update nodes set operator_id = id`.execute(db);
    await sql`insert into operators (id, status, admitted_via, join_token_id, created_at, status_changed_at, status_reason)
              select id, 'active', 'existing', null, registered_at, registered_at, null from nodes`.execute(db);
    await db.schema.createIndex("nodes_operator").on("nodes").column("operator_id").execute();
  },
};
