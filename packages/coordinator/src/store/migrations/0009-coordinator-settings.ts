import type { Kysely, Migration } from "kysely";

/**
 * `coordinator_settings`: values every replica sharing the database must agree on, written once by whichever replica
 * comes first (`Store.settleSetting`). The first is the cluster's name on the bus (bus/design.md): replicas of one
 * database find each other on the NATS server, and two databases' replicas on one server never hear each other.
 */
export const coordinatorSettings: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("coordinator_settings")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable("coordinator_settings").execute();
  },
};
