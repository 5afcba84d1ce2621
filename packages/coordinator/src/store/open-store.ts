import { mkdirSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { CompiledQuery, Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { TesseraError } from "@tessera/protocol";
import { KyselyStore } from "./kysely-store.js";
import { migrationProvider } from "./migrations/index.js";
import type { Database } from "./schema.js";
import { withStatementCache } from "./sqlite-statement-cache.js";
import type { Store, StoreOptions } from "./types.js";

/** Postgres identifiers we accept for `schema`: plain lowercase names, so quoting is never ambiguous. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const INT8_OID = 20;

/** Opens (creating if needed) the store and brings its schema to the latest migration. */
export async function openStore(options: StoreOptions): Promise<Store> {
  if ("sqlitePath" in options) return openSqlite(options.sqlitePath);
  if ("postgresUrl" in options) return openPostgres(options.postgresUrl, options.schema);
  throw new TesseraError("bad_request", "openStore needs either sqlitePath or postgresUrl");
}

async function openSqlite(path: string): Promise<Store> {
  if (typeof path !== "string" || path.length === 0) throw new TesseraError("bad_request", "sqlitePath must not be empty");
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const raw = new BetterSqlite3(path);
  try {
    // WAL: readers never block the writer. NORMAL: no fsync per commit; survives process crashes, a power cut may
    // lose the last commits. busy_timeout: a second process waits for the lock instead of failing at once.
    raw.pragma("journal_mode = WAL");
    raw.pragma("synchronous = NORMAL");
    raw.pragma("busy_timeout = 5000");
    raw.pragma("foreign_keys = ON");
  } catch (err) {
    raw.close();
    throw err;
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  await migrate(db, undefined, `SQLite file ${path}`);
  return new KyselyStore(db, "sqlite");
}

async function openPostgres(url: string, schema: string | undefined): Promise<Store> {
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
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool,
      onCreateConnection: schema
        ? (connection) => connection.executeQuery(CompiledQuery.raw(`set search_path to "${schema}"`)).then(() => {})
        : undefined,
    }),
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
  await migrate(db, schema, where);
  return new KyselyStore(db, "postgres");
}

async function migrate(db: Kysely<Database>, schema: string | undefined, where: string): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: schema });
  const { error } = await migrator.migrateToLatest();
  if (error !== undefined) {
    await db.destroy();
    throw new TesseraError("internal_error", `cannot migrate the store at ${where}: ${messageOf(error)}`, {
      cause: error,
    });
  }
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
