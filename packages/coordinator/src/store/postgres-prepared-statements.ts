import type pg from "pg";

/** The most statements one connection keeps prepared; later new ones are sent unnamed. */
export const MAX_PREPARED_PER_CONNECTION = 200;
/** Statements with more parameters (the multi-row inserts of a batch, whose text changes with its size) stay unnamed. */
export const MAX_PREPARED_PARAMETERS = 64;
/** The statements worth keeping: queries and row changes, never a utility command. */
const QUERY = /^\s*(select|insert|update|delete|with)\b/i;
/** "cached plan must not change result type": a table under a prepared `select *` changed (another replica migrated). */
const CACHED_PLAN_CHANGED = "0A000";

/**
 * PostgreSQL parses and plans an unnamed statement every time it runs, and Kysely sends every query unnamed. The
 * store runs the same few statements for every job (a job's insert and updates, its segment, its speed, its
 * standing), so each pooled connection names those it sees (pg prepares a named statement once per connection, then
 * sends only Bind and Execute). Measured on a 2-vCPU VM with `npm run bench -- replicas`: the PostgreSQL server's
 * CPU a job went from 2.66 to 1.97 ms with one replica and from 5.24 to 3.84 ms with three.
 *
 * Bounded: at most MAX_PREPARED_PER_CONNECTION statements a connection, of at most MAX_PREPARED_PARAMETERS
 * parameters. A statement whose prepared plan PostgreSQL refuses because a table changed under it (a newer replica
 * migrated the schema) runs again unnamed, and that text is never named again on this connection.
 */
export function usePreparedStatements(client: pg.PoolClient, capacity = MAX_PREPARED_PER_CONNECTION): void {
  const names = new Map<string, string>();
  const refused = new Set<string>();
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<pg.QueryResult>;
  const nameOf = (text: string, values: unknown[]): string | undefined => {
    if (values.length === 0 || values.length > MAX_PREPARED_PARAMETERS || refused.has(text) || !QUERY.test(text)) return undefined;
    let name = names.get(text);
    if (name === undefined && names.size < capacity) names.set(text, (name = `tessera_${names.size}`));
    return name;
  };
  const named = async (name: string, text: string, values: unknown[]): Promise<pg.QueryResult> => {
    try {
      return await query({ name, text, values });
    } catch (err) {
      if ((err as { code?: string }).code !== CACHED_PLAN_CHANGED) throw err;
      refused.add(text);
      return query(text, values);
    }
  };
  (client as unknown as { query: unknown }).query = (text: unknown, values?: unknown, ...rest: unknown[]) => {
    const name = typeof text === "string" && Array.isArray(values) && rest.length === 0 ? nameOf(text, values) : undefined;
    return name === undefined ? query(text, values, ...rest) : named(name, text as string, values as unknown[]);
  };
}
