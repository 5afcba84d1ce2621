import type { Kysely, Migration } from "kysely";

/**
 * The owner's requests to lift a node's quarantine, written by the CLI (which may run where no coordinator does) and
 * carried out, then deleted, by the coordinator's admission poll.
 */
export const quarantineReleases: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("quarantine_releases")
      .addColumn("node_id", "text", (c) => c.primaryKey())
      .addColumn("requested_at", "bigint", (c) => c.notNull())
      .addColumn("reason", "text")
      .execute();
  },
};
