import type { Kysely, Migration } from "kysely";

/**
 * Node standing (trust/design.md, "Reputation"): what must survive a restart so that a restart forgives nothing:
 * quarantine, cooldowns, P(cheat), check counts, the recent outcomes the completion factor reads, and each
 * operator's completed jobs (probation). Measured speed already lives in `node_model_metrics`. No foreign keys: the
 * standing of a node or operator outlives their other rows (a retired key's record still says why it was quarantined).
 */
export const nodeStanding: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("node_standing")
      .addColumn("node_id", "text", (c) => c.primaryKey())
      .addColumn("operator_id", "text", (c) => c.notNull())
      // The completion window, oldest first: one `1` (completed) or `0` per outcome.
      .addColumn("outcomes", "text", (c) => c.notNull())
      .addColumn("cheat_log_odds", "double precision", (c) => c.notNull())
      .addColumn("checks_passed", "integer", (c) => c.notNull())
      .addColumn("checks_failed", "integer", (c) => c.notNull())
      .addColumn("cooldown_until", "bigint")
      .addColumn("offence_streak", "integer", (c) => c.notNull())
      .addColumn("last_offence_at", "bigint")
      .addColumn("quarantined_at", "bigint")
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("operator_standing")
      .addColumn("operator_id", "text", (c) => c.primaryKey())
      .addColumn("completed_jobs", "integer", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable("operator_standing").execute();
    await db.schema.dropTable("node_standing").execute();
  },
};
