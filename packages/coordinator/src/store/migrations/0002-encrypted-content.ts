import { sql, type Kysely, type Migration } from "kysely";

/**
 * From here on, `jobs.messages` and `jobs.content` hold only ciphertext envelopes (content-cipher.ts) under keys kept
 * outside the database. Plaintext written before this version is expired here, not encrypted: earlier copies of it
 * already sit in the SQLite WAL and freed pages or in PostgreSQL dead tuples, where encrypting the live row would not
 * reach them. open-store.ts scrubs those once after this migration (SQLite VACUUM, PostgreSQL VACUUM FULL jobs).
 * Hashes and token counts stay, as after any expiry. There is no way down: the plaintext is gone.
 */
export const encryptedContent: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`update jobs set messages = null, content = null where messages is not null or content is not null`.execute(db);
  },
};
