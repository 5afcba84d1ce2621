/** Shared by the tests that need the PostgreSQL at 127.0.0.1:5432 (database `test`); test-only. */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, it } from "vitest";
import pg from "pg";
import { openStore, withDefaultUser } from "./open-store.js";
import type { Store } from "./types.js";

export const POSTGRES_URL = "postgres://127.0.0.1:5432/test";
// Test-only read of the environment: on CI the PostgreSQL run is mandatory.
const MANDATORY = process.env.CI === "true";

/** `undefined` when PostgreSQL answers, else why not. */
export async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: withDefaultUser(POSTGRES_URL), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("select 1");
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message || err.name : String(err);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A fresh schema name per test: runs never see each other's rows. */
export function randomSchema(): string {
  return `tessera_test_${randomBytes(6).toString("hex")}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDefaultUser(POSTGRES_URL) });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}

/**
 * Defines `body` when PostgreSQL answers; otherwise a skipped suite with a notice (a failing one on CI, where the
 * PostgreSQL run is mandatory).
 */
export function describeWithPostgres(label: string, unreachable: string | undefined, body: () => void): void {
  if (unreachable === undefined) {
    describe(label, body);
  } else if (MANDATORY) {
    describe(label, () => {
      it(`reaches PostgreSQL at ${POSTGRES_URL} (mandatory on CI)`, () => {
        throw new Error(`PostgreSQL at ${POSTGRES_URL} did not answer: ${unreachable}`);
      });
    });
  } else {
    console.warn(`NOTICE: ${label} skipped: no PostgreSQL answered at ${POSTGRES_URL} (${unreachable}).`);
    describe.skip(label, () => {
      it("needs a PostgreSQL server", () => {});
    });
  }
}

/** Opens a fresh store for one test, and disposes of it after. */
export type OpenTestStore = () => Promise<{ store: Store; dispose(): Promise<void> }>;

/** Opens a fresh store from `open` before each test of the suite (handing it to `use`) and disposes of it after. */
export function storeEachTest(open: OpenTestStore, use: (store: Store) => void): void {
  let dispose: () => Promise<void>;
  beforeEach(async () => {
    const opened = await open();
    use(opened.store);
    dispose = () => opened.dispose();
  });
  afterEach(async () => {
    await dispose();
  });
}

/**
 * Defines `suite` twice: on an in-memory SQLite store, and on a fresh schema of the test PostgreSQL (skipped with a
 * notice, or failing on CI, as describeWithPostgres says).
 */
export async function describeOnBothDialects(label: string, suite: (open: OpenTestStore) => void): Promise<void> {
  describe(`${label} on SQLite`, () => {
    suite(async () => {
      const store = await openStore({ sqlitePath: ":memory:" });
      return { store, dispose: () => store.close() };
    });
  });
  describeWithPostgres(`${label} on PostgreSQL at 127.0.0.1:5432`, await probePostgres(), () => {
    suite(async () => {
      const schema = randomSchema();
      const store = await openStore({ postgresUrl: POSTGRES_URL, schema });
      return {
        store,
        async dispose() {
          await store.close();
          await dropSchema(schema);
        },
      };
    });
  });
}
