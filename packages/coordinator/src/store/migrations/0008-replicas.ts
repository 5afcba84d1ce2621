import type { Kysely, Migration } from "kysely";

/**
 * Coordinator replicas sharing one database (issue 12, replicas/design.md):
 *
 * - `jobs.replica_id`: the replica that owns a job (created it and relays its stream). Start-up recovery and the
 *   sweeps end only their own replica's jobs, or those of a replica whose lease has lapsed. Rows written before this
 *   migration have none (`null`): one coordinator wrote them, and the next start ends whatever of them is unfinished.
 * - `coordinator_replicas`: one row per live replica, its lease (`last_seen_at`, renewed by heartbeat) and the random
 *   `instance` of the process holding the id, so two processes started with the same id cannot both hold it.
 * - `node_nonces`: every signed node request's (node key, nonce) seen by any replica, until its timestamp is too old
 *   for any replica to accept (`expires_at`); the primary key refuses the second use anywhere.
 */
export const replicas: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable("jobs").addColumn("replica_id", "text").execute();
    // failOwnJobs and failJobsOfDeadReplicas: unfinished jobs by owner.
    await db.schema.createIndex("jobs_status_replica").on("jobs").columns(["status", "replica_id"]).execute();
    await db.schema
      .createTable("coordinator_replicas")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("instance", "text", (c) => c.notNull())
      .addColumn("address", "text", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("last_seen_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("node_nonces")
      .addColumn("node_key", "text", (c) => c.notNull())
      .addColumn("nonce", "text", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("node_nonces_pk", ["node_key", "nonce"])
      .execute();
    await db.schema.createIndex("node_nonces_expiry").on("node_nonces").column("expires_at").execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable("node_nonces").execute();
    await db.schema.dropTable("coordinator_replicas").execute();
    await db.schema.dropIndex("jobs_status_replica").execute();
    await db.schema.alterTable("jobs").dropColumn("replica_id").execute();
  },
};
