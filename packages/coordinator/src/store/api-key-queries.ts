import type { Kysely, Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, fromMsOrNull, mapConstraintError, toMs } from "./codec.js";
import type { ApiKeysTable, Database } from "./schema.js";
import type { ApiKeyRecord, NewApiKey } from "./types.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;

function toApiKeyRecord(row: Selectable<ApiKeysTable>): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    tokenSha256: row.token_sha256,
    rateLimitPerMinute: row.rate_limit_per_minute,
    createdAt: fromMs(row.created_at),
    lastUsedAt: fromMsOrNull(row.last_used_at),
    revokedAt: fromMsOrNull(row.revoked_at),
  };
}

export async function createApiKey(db: Kysely<Database>, key: NewApiKey): Promise<ApiKeyRecord> {
  // Refusing anything but a hash keeps a caller from storing a raw token by mistake.
  if (!SHA256_HEX.test(key.tokenSha256)) {
    throw new TesseraError("bad_request", "tokenSha256 must be a lowercase hex SHA-256 digest, never the token");
  }
  if (key.name.length === 0) throw new TesseraError("bad_request", "an API key needs a name");
  checkKeyText(key.name, "an API key's name");
  if (!Number.isInteger(key.rateLimitPerMinute) || key.rateLimitPerMinute < 1) {
    throw new TesseraError("bad_request", "rateLimitPerMinute must be a positive integer");
  }
  try {
    const row = await db
      .insertInto("api_keys")
      .values({
        id: key.id,
        name: key.name,
        token_sha256: key.tokenSha256,
        rate_limit_per_minute: key.rateLimitPerMinute,
        created_at: toMs(key.createdAt, "createdAt"),
        last_used_at: null,
        revoked_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toApiKeyRecord(row);
  } catch (err) {
    throw mapConstraintError(err, { conflict: `an active API key named "${key.name}" (or with this id or token) exists` });
  }
}

export async function findApiKeyByHash(db: Kysely<Database>, tokenSha256: string): Promise<ApiKeyRecord | undefined> {
  const row = await db
    .selectFrom("api_keys")
    .selectAll()
    .where("token_sha256", "=", tokenSha256)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row ? toApiKeyRecord(row) : undefined;
}

export async function listApiKeys(db: Kysely<Database>): Promise<ApiKeyRecord[]> {
  const rows = await db.selectFrom("api_keys").selectAll().orderBy("created_at").orderBy("id").execute();
  return rows.map(toApiKeyRecord);
}

/** An id match wins over a name match, so one call never revokes two keys. */
export async function revokeApiKey(db: Kysely<Database>, idOrName: string, at: Date): Promise<boolean> {
  const revokedAt = toMs(at, "at");
  for (const column of ["id", "name"] as const) {
    const result = await db
      .updateTable("api_keys")
      .set({ revoked_at: revokedAt })
      .where(column, "=", idOrName)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) return true;
  }
  return false;
}

export async function touchApiKey(db: Kysely<Database>, id: string, at: Date): Promise<void> {
  await db.updateTable("api_keys").set({ last_used_at: toMs(at, "at") }).where("id", "=", id).execute();
}
