import { setImmediate } from "node:timers";
import type { Database as BetterSqliteDatabase } from "better-sqlite3";
import {
  type CompiledQuery,
  type DatabaseConnection,
  DeleteQueryNode,
  type Dialect,
  type Driver,
  InsertQueryNode,
  type QueryResult,
  SelectQueryNode,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  UpdateQueryNode,
} from "kysely";
import { withStatementCache } from "./sqlite-statement-cache.js";

/**
 * Kysely's SQLite dialect, except that the writes of one event-loop turn commit as one transaction.
 *
 * Each statement SQLite runs on its own is a transaction: it takes the WAL's locks (`fcntl` on the shared-memory
 * file), appends every page it changed to the WAL (a `pwrite` each) and releases them. The coordinator writes a job
 * a dozen times over its life (record, segments, escrow, settlement, receipts), mostly without waiting, and under
 * load many jobs write in the same turn, often to the same pages. Here the first insert, update or delete of a turn
 * opens `BEGIN IMMEDIATE`, every statement after it in the turn joins, and a `setImmediate` commits them all.
 *
 * What a caller sees is unchanged: a statement's promise resolves only once its transaction has committed, so a
 * resolved write is in the WAL exactly as before, and a write whose turn fails to commit is rejected. A statement that
 * fails on its own (a unique key, a foreign key) is undone alone, as SQLite undoes a failed statement inside a
 * transaction, and the others of its turn still commit; an error that makes SQLite roll back the whole transaction
 * rejects every statement of it. Statements that are not plain inserts, updates, deletes or selects (pragmas, DDL,
 * raw SQL) commit the turn's writes first and run on their own, as does an explicit transaction, which keeps the one
 * connection to itself until it ends: statements from elsewhere wait for it, as Kysely's driver made them wait.
 * The commit is scheduled with `node:timers`' `setImmediate`, which a test's fake timers (they replace the global)
 * leave alone: the store's writes land whatever clock the code around it runs on.
 */
export function turnCommitSqliteDialect(db: BetterSqliteDatabase): Dialect {
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new TurnCommitDriver(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
    createIntrospector: (kysely) => new SqliteIntrospector(kysely),
  };
}

interface Waiter {
  result: QueryResult<unknown>;
  resolve(result: QueryResult<unknown>): void;
  reject(error: unknown): void;
}

interface OpenTransaction {
  owner: DatabaseConnection;
  ended: Promise<void>;
  end(): void;
}

class TurnCommitDriver implements Driver {
  private readonly statements;
  /** The statements run in this turn's transaction, waiting for its commit; undefined when none is open. */
  private turn: Waiter[] | undefined;
  private transaction: OpenTransaction | undefined;

  constructor(private readonly db: BetterSqliteDatabase) {
    this.statements = withStatementCache(db);
  }

  async init(): Promise<void> {}

  /** A handle of its own for every caller, so the driver knows which one owns an explicit transaction. */
  async acquireConnection(): Promise<DatabaseConnection> {
    const connection: DatabaseConnection = {
      executeQuery: <R>(query: CompiledQuery) => this.execute(connection, query) as Promise<QueryResult<R>>,
      streamQuery: async function* () {
        throw new Error("the SQLite store does not stream rows");
      },
    };
    return connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    while (this.transaction) await this.transaction.ended;
    this.commitTurn();
    this.command("begin");
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    this.transaction = { owner: connection, ended, end };
  }

  async commitTransaction(): Promise<void> {
    try {
      this.command("commit");
    } finally {
      this.afterTransactionStatement();
    }
  }

  async rollbackTransaction(): Promise<void> {
    // SQLite may already have rolled it back itself (after an I/O error, say); rolling back nothing is an error.
    try {
      if (this.db.inTransaction) this.command("rollback");
    } finally {
      this.afterTransactionStatement();
    }
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {
    while (this.transaction) await this.transaction.ended;
    this.commitTurn();
    this.statements.close();
  }

  private afterTransactionStatement(): void {
    if (this.db.inTransaction || this.transaction === undefined) return;
    const ended = this.transaction;
    this.transaction = undefined;
    ended.end();
  }

  private async execute(connection: DatabaseConnection, query: CompiledQuery): Promise<QueryResult<unknown>> {
    while (this.transaction !== undefined && this.transaction.owner !== connection) await this.transaction.ended;
    if (this.transaction !== undefined) return this.run(query);
    const node = query.query;
    const write = InsertQueryNode.is(node) || UpdateQueryNode.is(node) || DeleteQueryNode.is(node);
    if (!write && !SelectQueryNode.is(node)) {
      this.commitTurn();
      return this.run(query);
    }
    // A read outside a turn's transaction sees only committed rows; inside one it may see the turn's writes, so it
    // answers once they have committed.
    if (!write && this.turn === undefined) return this.run(query);
    const turn = this.turn ?? this.openTurn();
    let result: QueryResult<unknown>;
    try {
      result = this.run(query);
    } catch (error) {
      if (!this.db.inTransaction) this.abandonTurn(error);
      throw error;
    }
    return new Promise((resolve, reject) => turn.push({ result, resolve, reject }));
  }

  private openTurn(): Waiter[] {
    this.command("begin immediate");
    const turn: Waiter[] = [];
    this.turn = turn;
    setImmediate(() => this.commitTurn());
    return turn;
  }

  /** Commits the turn's transaction, if one is open, and answers its statements. */
  private commitTurn(): void {
    const turn = this.turn;
    if (turn === undefined) return;
    this.turn = undefined;
    try {
      this.command("commit");
    } catch (error) {
      if (this.db.inTransaction) this.command("rollback");
      for (const waiter of turn) waiter.reject(error);
      return;
    }
    for (const waiter of turn) waiter.resolve(waiter.result);
  }

  /** SQLite rolled the turn's transaction back on its own (`cause`): every statement already run in it is undone. */
  private abandonTurn(cause: unknown): void {
    const turn = this.turn;
    if (turn === undefined) return;
    this.turn = undefined;
    const error = new Error(`SQLite rolled back this write with the others of its turn: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    for (const waiter of turn) waiter.reject(error);
  }

  private command(sql: "begin" | "begin immediate" | "commit" | "rollback"): void {
    this.statements.prepare(sql).run([]);
  }

  private run(query: CompiledQuery): QueryResult<unknown> {
    const statement = this.statements.prepare(query.sql);
    const parameters = query.parameters as unknown[];
    if (statement.reader) return { rows: statement.all(parameters) };
    const { changes, lastInsertRowid } = statement.run(parameters);
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
  }
}
