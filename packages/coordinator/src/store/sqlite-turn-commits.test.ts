import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { type Generated, Kysely, sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { turnCommitSqliteDialect } from "./sqlite-turn-commits.js";

interface Tables {
  items: { id: Generated<number>; name: string };
  notes: { id: Generated<number>; item: number };
}

/** Lets every pending microtask run, but no macrotask: the turn is still going on. */
async function sameTurn(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe("SQLite turn commits", () => {
  let dir: string;
  let raw: BetterSqlite3.Database;
  let db: Kysely<Tables>;
  /** A second connection to the same file: it sees only what has committed. */
  let outside: BetterSqlite3.Database;
  let commits: number;

  const committedNames = () => (outside.prepare("select name from items order by id").all() as Array<{ name: string }>).map((r) => r.name);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tessera-turns-"));
    raw = new BetterSqlite3(join(dir, "db.sqlite"));
    raw.pragma("journal_mode = WAL");
    raw.pragma("foreign_keys = ON");
    raw.exec(`create table items (id integer primary key, name text not null unique);
      create table notes (id integer primary key, item integer not null references items (id) deferrable initially deferred);`);
    commits = 0;
    const prepare = raw.prepare.bind(raw);
    raw.prepare = ((source: string) => {
      const statement = prepare(source);
      if (source !== "commit") return statement;
      const run = statement.run.bind(statement);
      return Object.assign(statement, { run: (...parameters: unknown[]) => (commits++, run(...parameters)) });
    }) as typeof raw.prepare;
    db = new Kysely<Tables>({ dialect: turnCommitSqliteDialect(raw) });
    outside = new BetterSqlite3(join(dir, "db.sqlite"));
  });

  afterEach(async () => {
    await db.destroy();
    outside.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("commits a turn's writes together, and answers each only once they have committed", async () => {
    let answered = 0;
    const writes = ["a", "b", "c"].map((name) =>
      db
        .insertInto("items")
        .values({ name })
        .execute()
        .then(() => answered++),
    );
    await sameTurn();
    expect(committedNames()).toEqual([]); // run, not yet committed
    expect(answered).toBe(0);
    await Promise.all(writes);
    expect(committedNames()).toEqual(["a", "b", "c"]);
    expect(commits).toBe(1);
  });

  it("answers a read inside a turn after the turn's writes commit, and one outside a turn at once", async () => {
    await db.insertInto("items").values({ name: "a" }).execute();
    let readAt: string[] | undefined;
    const read = db
      .selectFrom("items")
      .select("name")
      .execute()
      .then((rows) => (readAt = committedNames()) && rows);
    await sameTurn();
    expect(readAt).toEqual(["a"]); // no write in this turn: answered within it

    void db.insertInto("items").values({ name: "b" }).execute();
    const inTurn = db.selectFrom("items").select("name").execute();
    let seen: string[] | undefined;
    void inTurn.then(() => (seen = committedNames()));
    expect((await read).map((r) => r.name)).toEqual(["a"]);
    expect((await inTurn).map((r) => r.name)).toEqual(["a", "b"]); // sees its turn's write...
    expect(seen).toEqual(["a", "b"]); // ...and answers once that write has committed
  });

  it("rejects a statement that fails on its own, and still commits the others of its turn", async () => {
    await db.insertInto("items").values({ name: "taken" }).execute();
    const results = await Promise.allSettled([
      db.insertInto("items").values({ name: "x" }).execute(),
      db.insertInto("items").values({ name: "taken" }).execute(),
      db.insertInto("items").values({ name: "y" }).execute(),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    expect(committedNames()).toEqual(["taken", "x", "y"]);
  });

  it("rejects every statement of a turn whose commit fails, and keeps none of them", async () => {
    // A deferred foreign key is checked at COMMIT: the note points at no item, so the turn cannot commit.
    const results = await Promise.allSettled([
      db.insertInto("items").values({ name: "lost" }).execute(),
      db.insertInto("notes").values({ item: 999 }).execute(),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/);
    expect(committedNames()).toEqual([]);
    // The connection is usable again, out of the failed transaction.
    await db.insertInto("items").values({ name: "after" }).execute();
    expect(committedNames()).toEqual(["after"]);
  });

  it("commits the turn's writes before an explicit transaction, which then runs alone", async () => {
    void db.insertInto("items").values({ name: "before" }).execute();
    let sideWrite: Promise<unknown> | undefined;
    const transaction = db.transaction().execute(async (trx) => {
      expect(committedNames()).toEqual(["before"]); // committed when the transaction began
      await trx.insertInto("items").values({ name: "inside" }).execute();
      // A statement from elsewhere while the transaction holds the connection: it waits, and is not rolled back with it.
      sideWrite = db.insertInto("items").values({ name: "beside" }).execute();
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new Error("changed my mind");
    });
    await expect(transaction).rejects.toThrow("changed my mind");
    await sideWrite;
    expect(committedNames()).toEqual(["before", "beside"]);
  });

  it("commits the turn's writes before a statement it cannot batch (a pragma, raw SQL)", async () => {
    void db.insertInto("items").values({ name: "a" }).execute();
    await sameTurn();
    expect(committedNames()).toEqual([]);
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
    expect(committedNames()).toEqual(["a"]);
  });

  it("commits the last turn's writes when the database closes", async () => {
    const write = db.insertInto("items").values({ name: "last" }).execute();
    await sameTurn();
    await db.destroy();
    await write;
    expect(committedNames()).toEqual(["last"]);
    db = new Kysely<Tables>({ dialect: turnCommitSqliteDialect(new BetterSqlite3(join(dir, "db.sqlite"))) });
  });
});
