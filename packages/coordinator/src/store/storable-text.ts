import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult } from "kysely";

const NOT_STORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** The same, without the global flag's state: does a string hold any? */
const HOLDS_UNSTORABLE = new RegExp(NOT_STORABLE.source);

/**
 * The store's text domain: well-formed Unicode without NUL. PostgreSQL refuses NUL in `text` ("invalid byte sequence
 * for encoding UTF8: 0x00") and both drivers turn a lone surrogate into U+FFFD on the way to UTF-8; SQLite takes both.
 * Replacing each with U+FFFD before any driver sees it makes every string storable, and stored the same way, on both
 * dialects. JSON columns are unaffected (JSON.stringify escapes both as ASCII), and prompts and outputs are
 * ciphertext, so this only touches free text such as a node's error message or a name.
 */
export function storableText(value: string): string {
  return value.replace(NOT_STORABLE, "\uFFFD");
}

function storable(value: unknown): unknown {
  return typeof value === "string" ? storableText(value) : value;
}

/** The query with `storableText` applied to every string parameter (the same query when none changes). */
function storableQuery<Q extends CompiledQuery>(query: Q): Q {
  const parameters = query.parameters;
  for (let i = 0; i < parameters.length; i++) {
    const value = parameters[i];
    if (typeof value === "string" && HOLDS_UNSTORABLE.test(value)) return { ...query, parameters: parameters.map(storable) };
  }
  return query;
}

/**
 * Applies `storableText` to every string parameter of every query, written or compared, so a lookup by a name with
 * NUL finds the row stored under that name on both dialects instead of failing on one. At the driver, on the compiled
 * query's parameters: the store inlines no text into its SQL (its only literals are numbers), so every string a query
 * carries is a parameter. It was a Kysely plugin that copied every query's whole operation tree to reach its values,
 * 2.6 % of a replica's sampled time under load against 0.35 % now (`npm run bench -- replicas`, CPU profile).
 */
export function storableTextDialect(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => new StorableTextDriver(dialect.createDriver()),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
  };
}

/** The dialect's driver, its connections wrapped; the driver itself always gets its own connection objects back. */
class StorableTextDriver implements Driver {
  private readonly own = new WeakMap<DatabaseConnection, DatabaseConnection>();

  constructor(private readonly driver: Driver) {}

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.driver.acquireConnection();
    const wrapped: DatabaseConnection = {
      executeQuery: <R>(query: CompiledQuery): Promise<QueryResult<R>> => connection.executeQuery<R>(storableQuery(query)),
      streamQuery: <R>(query: CompiledQuery, chunkSize?: number) => connection.streamQuery<R>(storableQuery(query), chunkSize),
    };
    this.own.set(wrapped, connection);
    return wrapped;
  }

  private unwrap(connection: DatabaseConnection): DatabaseConnection {
    return this.own.get(connection) ?? connection;
  }

  beginTransaction(connection: DatabaseConnection, settings: Parameters<Driver["beginTransaction"]>[1]): Promise<void> {
    return this.driver.beginTransaction(this.unwrap(connection), settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.driver.commitTransaction(this.unwrap(connection));
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.driver.rollbackTransaction(this.unwrap(connection));
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver["savepoint"]>>[2]): Promise<void> {
    if (!this.driver.savepoint) throw new Error("this database driver has no savepoints");
    return this.driver.savepoint(this.unwrap(connection), name, compile);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver["rollbackToSavepoint"]>>[2]): Promise<void> {
    if (!this.driver.rollbackToSavepoint) throw new Error("this database driver has no savepoints");
    return this.driver.rollbackToSavepoint(this.unwrap(connection), name, compile);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver["releaseSavepoint"]>>[2]): Promise<void> {
    if (!this.driver.releaseSavepoint) throw new Error("this database driver has no savepoints");
    return this.driver.releaseSavepoint(this.unwrap(connection), name, compile);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    const own = this.unwrap(connection);
    this.own.delete(connection);
    return this.driver.releaseConnection(own);
  }

  destroy(): Promise<void> {
    return this.driver.destroy();
  }
}
