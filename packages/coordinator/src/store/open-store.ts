import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { CompiledQuery, Kysely, Migrator, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { TesseraError } from "@tessera/protocol";
import { FileKeyRing, MemoryKeyRing, type ContentKeyRing } from "./content-keys.js";
import { createPrivateFile, ensurePrivateDir, ensurePrivateFile, SQLITE_COMPANIONS } from "./file-modes.js";
import { KyselyStore } from "./kysely-store.js";
import { usePreparedStatements } from "./postgres-prepared-statements.js";
import { FIRST_MIGRATION, migrationProvider, SCRUB_AFTER } from "./migrations/index.js";
import type { Database } from "./schema.js";
import { turnCommitSqliteDialect } from "./sqlite-turn-commits.js";
import { storableTextDialect } from "./storable-text.js";
import type { Store, StoreLog, StoreOptions } from "./types.js";

/** Postgres identifiers we accept for `schema`: plain lowercase names, so quoting is never ambiguous. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const INT8_OID = 20;

/**
 * Opens (creating if needed) the store and brings its schema to the latest migration. The SQLite file, its WAL and
 * shared-memory files and the key directory are private to the owner (files 0600, directories 0700): created so, and
 * tightened (with a log line) when found looser.
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  const log = options.log;
  if ("sqlitePath" in options) return openSqlite(options.sqlitePath, options.keyDir, log);
  if ("postgresUrl" in options) {
    const keys = options.keyDir === undefined ? new MemoryKeyRing() : new FileKeyRing(options.keyDir, modeLog(log));
    return openPostgres(options.postgresUrl, options.schema, keys, log);
  }
  throw new TesseraError("bad_request", "openStore needs either sqlitePath or postgresUrl");
}

function modeLog(log: StoreLog | undefined) {
  return log && ((fields: { path: string; from: string; to: string }, message: string) => log(fields, message));
}

async function openSqlite(path: string, keyDir: string | undefined, log: StoreLog | undefined): Promise<Store> {
  if (typeof path !== "string" || path.length === 0) throw new TesseraError("bad_request", "sqlitePath must not be empty");
  const onDisk = path !== ":memory:";
  if (onDisk) {
    ensurePrivateDir(dirname(path), modeLog(log));
    createPrivateFile(path, modeLog(log));
    for (const suffix of SQLITE_COMPANIONS) ensurePrivateFile(path + suffix, modeLog(log));
  }
  const keys: ContentKeyRing =
    keyDir !== undefined || onDisk ? new FileKeyRing(keyDir ?? join(dirname(path), "content-keys"), modeLog(log)) : new MemoryKeyRing();
  const raw = new BetterSqlite3(path);
  try {
    // WAL: readers never block the writer. NORMAL: no fsync per commit; survives process crashes, a power cut may
    // lose the last commits. busy_timeout: a second process waits for the lock instead of failing at once.
    // secure_delete: deleted and overwritten content is zeroed in the page instead of left in free space.
    raw.pragma("journal_mode = WAL");
    raw.pragma("synchronous = NORMAL");
    raw.pragma("busy_timeout = 5000");
    raw.pragma("foreign_keys = ON");
    raw.pragma("secure_delete = ON");
    // Checkpoint every ~40 MB of WAL instead of SQLite's ~4 MB: each checkpoint copies pages into the file and syncs
    // it, and with a dozen short transactions per job (record, escrow, settlement, receipts) the default checkpointed
    // every few dozen jobs (`npm run bench -- ledger`: 276 -> 401 settled jobs/s). The expiry sweep still truncates the
    // WAL after it shreds content (store/design.md).
    raw.pragma("wal_autocheckpoint = 10000");
    // A 64 MiB page cache instead of 2 MiB: a job touches a dozen B-trees (jobs, segments, ledger, receipts and their
    // indexes), and their hot pages then stay in memory (bench ledger at 10,000 jobs: ~490 -> 542-562 jobs/s).
    raw.pragma("cache_size = -65536");
  } catch (err) {
    raw.close();
    throw err;
  }
  if (onDisk) for (const suffix of SQLITE_COMPANIONS) ensurePrivateFile(path + suffix, modeLog(log));
  const db = new Kysely<Database>({
    dialect: storableTextDialect(turnCommitSqliteDialect(raw)),
  });
  // After an expiry sweep, the WAL still holds the pages as they were before it: copy the (zeroed) pages into the
  // database and cut the WAL to zero bytes. Through Kysely, so it waits for a transaction in progress on the one
  // connection (straight on the connection, it failed with "database table is locked" mid-transaction).
  const checkpoint = async () => {
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
  };
  if (await migrate(db, undefined, `SQLite file ${path}`)) {
    // Plaintext from before encryption may sit in free pages (deleted before secure_delete was on): rebuild the file.
    raw.exec("VACUUM");
    await checkpoint();
    log?.({ path }, "expired job content stored in plaintext by an earlier version and scrubbed the database file");
  }
  return new KyselyStore(db, "sqlite", keys, checkpoint);
}

async function openPostgres(
  url: string,
  schema: string | undefined,
  keys: ContentKeyRing,
  log: StoreLog | undefined,
): Promise<Store> {
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new TesseraError("bad_request", `schema must match ${SCHEMA_NAME.source}, got "${schema}"`);
  }
  const pool = new pg.Pool({
    connectionString: withDefaultUser(url),
    // Per-pool, so pg's global type table (shared with anyone else in the process) stays untouched:
    // int8 (epoch-ms columns, count(*)) comes back as a JS number instead of a string.
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  pool.on("connect", (client) => usePreparedStatements(client));
  const db = new Kysely<Database>({
    dialect: storableTextDialect(
      new PostgresDialect({
        pool,
        onCreateConnection: schema
          ? (connection) => connection.executeQuery(CompiledQuery.raw(`set search_path to "${schema}"`)).then(() => {})
          : undefined,
      }),
    ),
  });
  const where = `PostgreSQL ${redactUrl(url)}${schema ? ` schema ${schema}` : ""}`;
  if (schema !== undefined) {
    try {
      await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    } catch (err) {
      await db.destroy();
      throw new TesseraError("internal_error", `cannot open the store at ${where}: ${messageOf(err)}`, { cause: err });
    }
  }
  if (await migrate(db, schema, where)) {
    // Dead tuples of the old plaintext rows: VACUUM FULL writes the table anew and drops the old files.
    await sql`vacuum full jobs`.execute(db);
    log?.({ where }, "expired job content stored in plaintext by an earlier version and rewrote the jobs table");
  }
  return new KyselyStore(db, "postgres", keys);
}

/**
 * Brings the schema up to date. `true` when this run expired plaintext of an earlier version: it applied the
 * migration that does so to a database that existed before (a new database has nothing to scrub).
 */
async function migrate(db: Kysely<Database>, schema: string | undefined, where: string): Promise<boolean> {
  // Unordered: migrations written side by side (0003 operators, 0004 node standing) may reach a database in either
  // order; each touches its own tables, and a missing one is still applied, in name order, on the next start.
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: schema, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    await db.destroy();
    throw new TesseraError("internal_error", `cannot migrate the store at ${where}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  const applied = new Set((results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName));
  return applied.has(SCRUB_AFTER) && !applied.has(FIRST_MIGRATION);
}

function messageOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return messageOf(err.errors[0]);
  return err instanceof Error ? err.message || String((err as { code?: unknown }).code ?? err.name) : String(err);
}

/**
 * libpq (psql) defaults the user to the OS account; pg 8 uses `$USER`, which is unset under some service managers
 * and containers, and then fails with "no PostgreSQL user name specified". Fill in the OS account in that case only.
 */
export function withDefaultUser(url: string): string {
  if (pg.defaults.user) return url;
  try {
    const parsed = new URL(url);
    if (parsed.username) return url;
    parsed.username = encodeURIComponent(userInfo().username);
    return parsed.toString();
  } catch {
    return url; // pg reports the malformed URL itself
  }
}

/** Keeps passwords out of error messages and logs. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable URL)";
  }
}
