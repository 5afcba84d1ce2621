/**
 * Issue 13, "must show" 2: after expiry neither an expired prompt nor an expired output can be found in any file of
 * the coordinator's data dir (database, WAL, shared memory, journal) nor in a pg_dump, on both dialects, through the
 * real API and the real expiry sweep; and a backup taken before expiry holds only ciphertext whose key is gone.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { openContent } from "../src/store/content-cipher.js";
import { migrationProvider } from "../src/store/migrations/index.js";
import { openStore } from "../src/store/index.js";
import { FileKeyRing } from "../src/store/content-keys.js";
import { withDefaultUser } from "../src/store/open-store.js";
import { describeWithPostgres, dropSchema, POSTGRES_URL, probePostgres, randomSchema } from "../src/store/postgres-test-support.js";
import { coordinatorOn, until, type Dialect, type DialectCoordinator } from "./dialect-coordinator.js";

const unreachable = await probePostgres();
const TTL_S = 3600;
const ENVELOPE = /c1\.(\d+|never)\.[A-Za-z0-9_-]+/g;

/** Every file under `dir`, as bytes read as latin1 so an ASCII marker is found wherever it sits. */
function filesUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) for (const [p, text] of filesUnder(path)) out.set(p, text);
    else out.set(path, readFileSync(path).toString("latin1"));
  }
  return out;
}

function pgDump(schema: string): string {
  return execFileSync("pg_dump", ["--dbname", withDefaultUser(POSTGRES_URL), "--schema", schema, "--data-only"], {
    encoding: "latin1",
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** A backup as an operator would take one (the database file and its WAL, copied), restored and read. */
function sqliteBackupEnvelopes(dataDir: string): string[] {
  const copy = mkdtempSync(join(tmpdir(), "tessera-backup-"));
  try {
    for (const suffix of ["", "-wal"]) {
      if (existsSync(join(dataDir, `coordinator.db${suffix}`))) copyFileSync(join(dataDir, `coordinator.db${suffix}`), join(copy, `coordinator.db${suffix}`));
    }
    const db = new BetterSqlite3(join(copy, "coordinator.db"));
    const rows = db.prepare("select messages, content from jobs").all() as { messages: string | null; content: string | null }[];
    db.close();
    return rows.flatMap((r) => [r.messages, r.content]).filter((v): v is string => v !== null);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * PostgreSQL's own files (heap, dead tuples, WAL), when this test runs on the database's machine with the right to
 * read them; `undefined` otherwise (then the pg_dump check stands alone).
 */
async function postgresDataDir(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: withDefaultUser(POSTGRES_URL) });
  await client.connect();
  try {
    const dir = (await client.query("show data_directory")).rows[0]?.data_directory as string | undefined;
    // Push what is in shared buffers to the heap files; the WAL has it already.
    await client.query("checkpoint").catch(() => {});
    if (!dir) return undefined;
    accessSync(join(dir, "base"), constants.R_OK | constants.X_OK);
    return dir;
  } catch {
    return undefined;
  } finally {
    await client.end();
  }
}

/** Files under `dir` holding any marker, by grep (fast over a whole PostgreSQL cluster). */
function grepFiles(dir: string, markers: string[]): string[] {
  try {
    return execFileSync("grep", ["-rlasF", ...markers.flatMap((m) => ["-e", m]), dir], { encoding: "utf8", maxBuffer: 1 << 20 })
      .split("\n")
      .filter(Boolean);
  } catch (err) {
    const e = err as { status?: number; stdout?: string };
    // 1: nothing found; 2: some file could not be read (matches, if any, are still on stdout).
    return (e.stdout ?? "").split("\n").filter(Boolean);
  }
}

function holding(texts: Iterable<[string, string]>, markers: string[]): string[] {
  const found: string[] = [];
  for (const [where, text] of texts) for (const m of markers) if (text.includes(m)) found.push(`${m} in ${where}`);
  return found;
}

function defineRetention(dialect: Dialect): void {
  let t: DialectCoordinator | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it("stores prompt and output only as ciphertext, serves them until expiry, and leaves nothing readable after it", async () => {
    t = await coordinatorOn(dialect, { overrides: { resultTtlS: TTL_S } });
    const prompt = `PROMPT-MARKER-${randomBytes(8).toString("hex")}`;
    const output = `OUTPUT-MARKER-${randomBytes(8).toString("hex")}`;
    const markers = [prompt, output];
    t.node.onAssign = (job, node) => {
      node.accept(job.job_id);
      node.stream(job.job_id, [{ type: "text-delta", text: output }, { type: "usage", prompt_tokens: 5, completion_tokens: 4 }, { type: "finish", reason: "stop" }]);
    };
    const created = await t.api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: prompt }] });
    expect(created.status).toBe(202);
    const id: string = created.json().id;
    await until(async () => ((await t!.api("GET", `/api/v1/jobs/${id}`)).json().status === "completed" ? true : undefined));
    // Let the coordinator forget the live job (once its record has landed), so what follows is read from the store.
    await t.coordinator.ctx.jobs.get(id)?.persisted;
    t.clock.advance(61_000);
    t.coordinator.tick();
    expect(t.coordinator.ctx.jobs.get(id)).toBeUndefined();

    // Before expiry: the API still serves both, decrypted; on disk and in the dump they are ciphertext only.
    const before = (await t.api("GET", `/api/v1/jobs/${id}`)).json();
    expect(before).toMatchObject({ status: "completed", result: { content: output } });
    expect((await t.coordinator.ctx.store.getJob(id))?.messages).toEqual([{ role: "user", content: prompt }]);
    expect(holding(filesUnder(t.dir), markers)).toEqual([]);
    let envelopes: string[];
    if (t.schema) {
      const dump = pgDump(t.schema);
      expect(holding([["pg_dump", dump]], markers)).toEqual([]);
      envelopes = [...dump.matchAll(ENVELOPE)].map((m) => m[0]);
    } else {
      envelopes = sqliteBackupEnvelopes(t.dir);
    }
    expect(envelopes).toHaveLength(2);
    const keyDir = join(t.dir, "content-keys");
    const keys = new FileKeyRing(keyDir);
    // The backup's ciphertext opens while the key exists: the check below would notice a key that survived.
    expect(envelopes.map((e) => openContent<unknown>(keys, id, "messages", e) ?? openContent<unknown>(keys, id, "content", e))).toEqual(
      expect.arrayContaining([[{ role: "user", content: prompt }], output]),
    );

    // Expiry, by the sweep the coordinator runs every minute.
    t.clock.advance(TTL_S * 1000 + 3_600_000);
    expect(await t.coordinator.ctx.store.expireJobContent(new Date(t.clock.now()))).toBe(1);
    const after = await t.coordinator.ctx.store.getJob(id);
    expect(after).toMatchObject({ messages: null, content: null, completionTokens: 4, promptTokens: 5 });
    expect(after?.promptSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(after?.outputSha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await t.api("GET", `/api/v1/jobs/${id}`)).json()).toMatchObject({ status: "completed", result: { content: "", usage: { completion_tokens: 4 } } });

    // Every key of the job is destroyed: the backup taken before expiry holds ciphertext nobody can open.
    const usedKeys = new Set(envelopes.map((e) => e.split(".")[1]!));
    for (const keyId of usedKeys) expect(existsSync(join(keyDir, `${keyId}.key`))).toBe(false);
    const fresh = new FileKeyRing(keyDir);
    for (const e of envelopes) {
      expect(openContent(fresh, id, "messages", e)).toBeUndefined();
      expect(openContent(fresh, id, "content", e)).toBeUndefined();
    }
    const dumpAfter = t.schema ? pgDump(t.schema) : "";
    expect(dumpAfter.match(ENVELOPE) ?? []).toEqual([]);
    expect(holding([["pg_dump", dumpAfter]], markers)).toEqual([]);
    if (t.schema) {
      // The database's own files, dead tuples and WAL included: the text never reached them unencrypted.
      const pgData = await postgresDataDir();
      if (pgData) expect(grepFiles(pgData, markers)).toEqual([]);
      else console.warn("NOTICE: PostgreSQL's data directory is not readable here; checked the pg_dump only");
    }

    if (!t.schema) {
      // Defence in depth on SQLite: secure_delete zeroed the ciphertext and the checkpoint emptied the WAL, so not
      // even the (now undecryptable) envelopes are left in the files.
      const sqliteFiles = [...filesUnder(t.dir)].filter(([p]) => !p.includes("content-keys"));
      expect(sqliteFiles.filter(([, text]) => envelopes.some((e) => text.includes(e.slice(0, 40)))).map(([p]) => p)).toEqual([]);
    }

    // After a clean shutdown: nothing in any file of the data dir.
    await t.shutdown();
    expect(holding(filesUnder(t.dir), markers)).toEqual([]);
    expect(readdirSync(keyDir).filter((n) => n.endsWith(".key"))).toEqual([]);
  });
}

describe("retention on SQLite", () => defineRetention("sqlite"));
describeWithPostgres("retention on PostgreSQL", unreachable, () => defineRetention("postgres"));

describe("upgrade from plaintext content", () => {
  it("expires plaintext an earlier version stored and scrubs it from the SQLite files, freed pages included", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tessera-upgrade-"));
    try {
      const path = join(dir, "coordinator.db");
      const marker = `LEGACY-MARKER-${randomBytes(8).toString("hex")}`;
      // A database as version 0001 left it: plaintext prompts and outputs, some rows deleted (their bytes in free pages).
      const raw = new BetterSqlite3(path);
      raw.pragma("journal_mode = WAL");
      const old = new Kysely<any>({ dialect: new SqliteDialect({ database: raw }) });
      const migrated = await new Migrator({ db: old, provider: migrationProvider }).migrateTo("0001-initial");
      expect(migrated.error).toBeUndefined();
      const insert = raw.prepare(
        "insert into jobs (id, owner_id, model, status, messages, prompt_sha256, sampling, content, created_at, content_expires_at) values (?, 'o', 'm', 'completed', ?, 'h', '{}', ?, 0, 9999999999999)",
      );
      for (let i = 0; i < 50; i++) insert.run(`j${i}`, JSON.stringify([{ role: "user", content: `${marker} prompt ${i} ${"x".repeat(500)}` }]), `${marker} output ${i}`);
      raw.prepare("delete from jobs where id > 'j2'").run();
      await old.destroy();
      expect(holding(filesUnder(dir), [marker]).length).toBeGreaterThan(0);

      const lines: string[] = [];
      const store = await openStore({ sqlitePath: path, log: (_fields, message) => lines.push(message) });
      const kept = await store.getJob("j1");
      expect(kept).toMatchObject({ messages: null, content: null, promptSha256: "h", status: "completed" });
      await store.close();
      expect(lines.some((l) => l.includes("scrubbed"))).toBe(true);
      expect(holding(filesUnder(dir), [marker])).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithPostgres("upgrade from plaintext content on PostgreSQL", unreachable, () => {
  it("expires plaintext an earlier version stored and rewrites the table", async () => {
    const schema = randomSchema();
    const marker = `LEGACY-MARKER-${randomBytes(8).toString("hex")}`;
    const pool = new pg.Pool({ connectionString: withDefaultUser(POSTGRES_URL), max: 1 });
    const old = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    try {
      await sql`create schema ${sql.id(schema)}`.execute(old);
      await sql`set search_path to ${sql.id(schema)}`.execute(old);
      const migrated = await new Migrator({ db: old, provider: migrationProvider, migrationTableSchema: schema }).migrateTo("0001-initial");
      expect(migrated.error).toBeUndefined();
      await sql`insert into jobs (id, owner_id, model, status, messages, prompt_sha256, sampling, content, created_at, content_expires_at)
        values ('j1', 'o', 'm', 'completed', ${JSON.stringify([{ role: "user", content: marker }])}, 'h', '{}', ${marker}, 0, 9999999999999)`.execute(old);
      await old.destroy();
      expect(pgDump(schema)).toContain(marker);
      const lines: string[] = [];
      const store = await openStore({ postgresUrl: POSTGRES_URL, schema, log: (_f, message) => lines.push(message) });
      expect(await store.getJob("j1")).toMatchObject({ messages: null, content: null, promptSha256: "h" });
      await store.close();
      expect(lines.some((l) => l.includes("rewrote the jobs table"))).toBe(true);
      expect(pgDump(schema)).not.toContain(marker);
    } finally {
      await dropSchema(schema);
    }
  });
});
