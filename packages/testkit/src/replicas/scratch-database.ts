import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import pg from "pg";

/** The machine's PostgreSQL (trust auth, database `test`), where scratch databases are made. */
export const POSTGRES_ADMIN_URL = "postgres://127.0.0.1:5432/test";
/** The machine's NATS server. */
export const NATS_URL = "nats://127.0.0.1:4222";

/** `url` with the user the server's trust auth expects (PGUSER, else this OS user): pg sends none otherwise. */
function asUser(url: string): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(process.env.PGUSER || userInfo().username);
  return parsed.toString();
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: asUser(POSTGRES_ADMIN_URL), connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** `undefined` when PostgreSQL answers at POSTGRES_ADMIN_URL, else why not. */
export async function probePostgresServer(): Promise<string | undefined> {
  return withAdmin(async (c) => void (await c.query("select 1"))).then(
    () => undefined,
    (err: unknown) => `PostgreSQL at ${POSTGRES_ADMIN_URL}: ${err instanceof Error ? err.message || err.name : String(err)}`,
  );
}

/** A new, empty database of its own (a run never sees another's rows); `drop` removes it, connections and all. */
export async function createScratchDatabase(): Promise<{ url: string; query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>; drop(): Promise<void> }> {
  const name = `tessera_scratch_${randomBytes(6).toString("hex")}`;
  await withAdmin((c) => c.query(`create database ${name}`));
  const url = `postgres://127.0.0.1:5432/${name}`;
  return {
    url,
    async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      const client = new pg.Client({ connectionString: asUser(url) });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    drop: () => withAdmin((c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}
