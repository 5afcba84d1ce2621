import { sql, type Kysely, type Migration } from "kysely";

/**
 * The first schema. Portable on SQLite and Postgres: only `text`, `integer`, `bigint` (epoch ms) and
 * `double precision` columns, no dialect-specific defaults or generated ids.
 */
export const initial: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("nodes")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("version", "text", (c) => c.notNull())
      .addColumn("hardware", "text", (c) => c.notNull())
      .addColumn("models", "text", (c) => c.notNull())
      .addColumn("max_concurrency", "integer", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("registered_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addColumn("status_changed_at", "bigint", (c) => c.notNull())
      .addColumn("last_seen_at", "bigint")
      .addColumn("last_heartbeat_at", "bigint")
      .addColumn("gpus", "text", (c) => c.notNull().defaultTo("[]"))
      .addColumn("loaded_models", "text", (c) => c.notNull().defaultTo("[]"))
      .addColumn("active_jobs", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("draining", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    // The silence sweep scans online nodes by last_seen_at.
    await db.schema.createIndex("nodes_status_seen").on("nodes").columns(["status", "last_seen_at"]).execute();

    await db.schema
      .createTable("jobs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("owner_id", "text", (c) => c.notNull())
      .addColumn("model", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("messages", "text")
      .addColumn("prompt_sha256", "text", (c) => c.notNull())
      .addColumn("sampling", "text", (c) => c.notNull())
      .addColumn("node_id", "text")
      .addColumn("content", "text")
      .addColumn("output_sha256", "text")
      .addColumn("prompt_tokens", "integer")
      .addColumn("completion_tokens", "integer")
      .addColumn("error", "text")
      .addColumn("error_message", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("started_at", "bigint")
      .addColumn("completed_at", "bigint")
      .addColumn("latency_ms", "double precision")
      .addColumn("content_expires_at", "bigint")
      .execute();
    // listJobs: one owner's jobs newest first, optionally since an instant.
    await db.schema.createIndex("jobs_owner_created").on("jobs").columns(["owner_id", "created_at"]).execute();
    // failStaleJobs: unfinished jobs by age.
    await db.schema.createIndex("jobs_status_created").on("jobs").columns(["status", "created_at"]).execute();
    // expireJobContent: only rows that still hold content are worth visiting. The predicate must stay textually
    // identical to the one in job-queries.ts, or SQLite will not use this partial index.
    await db.schema
      .createIndex("jobs_content_expiry")
      .on("jobs")
      .column("content_expires_at")
      .where(sql<boolean>`messages is not null or content is not null`)
      .execute();

    await db.schema
      .createTable("job_segments")
      .addColumn("job_id", "text", (c) => c.notNull().references("jobs.id").onDelete("cascade"))
      .addColumn("seq", "integer", (c) => c.notNull())
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("completion_tokens", "integer", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("ended_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("job_segments_pk", ["job_id", "seq"])
      .execute();

    await db.schema
      .createTable("api_keys")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("token_sha256", "text", (c) => c.notNull().unique())
      .addColumn("rate_limit_per_minute", "integer", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("last_used_at", "bigint")
      .addColumn("revoked_at", "bigint")
      .execute();
    // A name names one active key; a revoked key's name may be reused.
    await db.schema
      .createIndex("api_keys_active_name")
      .on("api_keys")
      .column("name")
      .unique()
      .where(sql.ref("revoked_at"), "is", null)
      .execute();

    await db.schema
      .createTable("node_model_metrics")
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("model", "text", (c) => c.notNull())
      .addColumn("tokens_per_second", "double precision", (c) => c.notNull())
      .addColumn("ttft_ms", "double precision", (c) => c.notNull())
      .addColumn("samples", "integer", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("node_model_metrics_pk", ["node_id", "model"])
      .execute();

    await db.schema
      .createTable("node_commands")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("node_id", "text", (c) => c.notNull().references("nodes.id").onDelete("cascade"))
      .addColumn("type", "text", (c) => c.notNull())
      .addColumn("model", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("progress", "double precision")
      .addColumn("error", "text")
      .addColumn("issued_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("node_commands_node_status")
      .on("node_commands")
      .columns(["node_id", "status", "issued_at"])
      .execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    for (const table of ["node_commands", "node_model_metrics", "api_keys", "job_segments", "jobs", "nodes"]) {
      await db.schema.dropTable(table).execute();
    }
  },
};
