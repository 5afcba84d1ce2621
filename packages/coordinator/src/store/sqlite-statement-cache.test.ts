import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { withStatementCache } from "./sqlite-statement-cache.js";

describe("SQLite prepared-statement cache", () => {
  it("reuses a statement for the same SQL and stays correct past its capacity", () => {
    const raw = new BetterSqlite3(":memory:");
    let prepared = 0;
    const counting = Object.assign(Object.create(raw) as BetterSqlite3.Database, {
      prepare: (sql: string) => {
        prepared++;
        return raw.prepare(sql);
      },
      close: () => raw.close(),
    });
    const db = withStatementCache(counting, 2);
    db.prepare("create table t (v integer)").run([]);
    const insert = "insert into t (v) values (?)";
    for (let i = 0; i < 5; i++) db.prepare(insert).run([i]);
    expect(prepared).toBe(2); // create + insert, the insert prepared once

    // three distinct queries through a two-slot cache: evicted ones are prepared again and still answer right
    const queries = ["select count(*) as n from t", "select max(v) as n from t", "select min(v) as n from t"];
    const answers = [5, 4, 0];
    for (let round = 0; round < 3; round++) {
      queries.forEach((sql, i) => expect(db.prepare(sql).all([])).toEqual([{ n: answers[i] }]));
    }
    db.close();
  });
});
