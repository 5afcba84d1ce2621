import { afterEach, beforeEach, expect, it } from "vitest";
import pg from "pg";
import { withDefaultUser } from "./open-store.js";
import { MAX_PREPARED_PARAMETERS, usePreparedStatements } from "./postgres-prepared-statements.js";
import { POSTGRES_URL, describeWithPostgres, dropSchema, probePostgres, randomSchema } from "./postgres-test-support.js";

describeWithPostgres("prepared statements on PostgreSQL at 127.0.0.1:5432", await probePostgres(), () => {
  let pool: pg.Pool;
  let client: pg.PoolClient;
  let schema: string;
  const prepared = async () => (await client.query("select statement from pg_prepared_statements order by prepare_time")).rows.map((r: { statement: string }) => r.statement);

  beforeEach(async () => {
    schema = randomSchema();
    pool = new pg.Pool({ connectionString: withDefaultUser(POSTGRES_URL), max: 1 });
    pool.on("connect", (c) => usePreparedStatements(c, 2));
    client = await pool.connect();
    await client.query(`create schema "${schema}"`);
    await client.query(`set search_path to "${schema}"`);
    await client.query("create table t (id int primary key, v text)");
  });

  afterEach(async () => {
    client.release();
    await pool.end();
    await dropSchema(schema);
  });

  it("prepares a parameterised statement once and reuses it; utility commands and statements without parameters stay unnamed", async () => {
    for (let i = 0; i < 3; i++) await client.query("insert into t (id, v) values ($1, $2)", [i, `v${i}`]);
    expect((await client.query("select v from t where id = $1", [2])).rows).toEqual([{ v: "v2" }]);
    expect((await client.query("select count(*)::int as n from t")).rows).toEqual([{ n: 3 }]);
    expect(await prepared()).toEqual(["insert into t (id, v) values ($1, $2)", "select v from t where id = $1"]);
  });

  it("keeps at most its capacity, and leaves statements with too many parameters unnamed", async () => {
    await client.query("select v from t where id = $1", [1]);
    await client.query("select v from t where id = $1 or id = $2", [1, 2]);
    await client.query("select v from t where id in ($1, $2, $3)", [1, 2, 3]); // over the capacity of 2: unnamed, still run
    const many = Array.from({ length: MAX_PREPARED_PARAMETERS + 1 }, (_, i) => i);
    const answer = await client.query(`select count(*)::int as n from t where id in (${many.map((_, i) => `$${i + 1}`).join(", ")})`, many);
    expect(answer.rows).toEqual([{ n: 0 }]);
    expect(await prepared()).toHaveLength(2);
  });

  it("runs a statement again unnamed when its table changed under the prepared plan (another replica migrated), and names it no more", async () => {
    await client.query("insert into t (id, v) values ($1, $2)", [1, "a"]);
    expect((await client.query("select * from t where id = $1", [1])).rows).toEqual([{ id: 1, v: "a" }]);
    await client.query("alter table t add column w int");
    expect((await client.query("select * from t where id = $1", [1])).rows).toEqual([{ id: 1, v: "a", w: null }]);
    expect((await client.query("select * from t where id = $1", [1])).rows).toEqual([{ id: 1, v: "a", w: null }]);
  });

  it("passes a bad statement's error through, and the connection goes on", async () => {
    await expect(client.query("select v from nowhere where id = $1", [1])).rejects.toThrow(/nowhere/);
    expect((await client.query("select v from t where id = $1", [9])).rows).toEqual([]);
  });
});
