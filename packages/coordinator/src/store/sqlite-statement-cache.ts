import type { Database as BetterSqliteDatabase, Statement } from "better-sqlite3";
import type { SqliteDatabase, SqliteStatement } from "kysely";

/**
 * Kysely's SQLite driver calls `prepare(sql)` for every query; better-sqlite3 then parses and plans the SQL each
 * time. The store sends the same few statements over and over (job insert/update on the request path), so this
 * wrapper keeps the most recently used prepared statements by SQL text. Safe because better-sqlite3 is synchronous
 * and the store never streams rows (a statement mid-`iterate()` could not be reused).
 */
export function withStatementCache(db: BetterSqliteDatabase, capacity = 256): SqliteDatabase {
  const cache = new Map<string, Statement>();
  return {
    close() {
      cache.clear();
      db.close();
    },
    prepare(sql: string): SqliteStatement {
      let statement = cache.get(sql);
      if (statement !== undefined) {
        // Re-insert to mark as most recently used; Map keeps insertion order.
        cache.delete(sql);
      } else {
        statement = db.prepare(sql);
        if (cache.size >= capacity) cache.delete(cache.keys().next().value as string);
      }
      cache.set(sql, statement);
      return statement as unknown as SqliteStatement;
    },
  };
}
