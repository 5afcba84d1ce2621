import type { Kysely, Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, fromMsOrNull, mapConstraintError, toMs } from "./codec.js";
import type { Database, JoinTokensTable } from "./schema.js";
import type { JoinTokenRecord, NewJoinToken } from "./types.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;

function toJoinTokenRecord(row: Selectable<JoinTokensTable>): JoinTokenRecord {
  return {
    id: row.id,
    tokenSha256: row.token_sha256,
    note: row.note,
    maxUses: row.max_uses,
    uses: row.uses,
    createdAt: fromMs(row.created_at),
    expiresAt: fromMs(row.expires_at),
    revokedAt: fromMsOrNull(row.revoked_at),
  };
}

export async function createJoinToken(db: Kysely<Database>, token: NewJoinToken): Promise<JoinTokenRecord> {
  // Refusing anything but a hash keeps a caller from storing a raw token by mistake.
  if (!SHA256_HEX.test(token.tokenSha256)) throw new TesseraError("bad_request", "tokenSha256 must be a lowercase hex SHA-256 digest, never the token");
  if (!Number.isInteger(token.maxUses) || token.maxUses < 1) throw new TesseraError("bad_request", "a join token allows at least one use");
  if (token.note !== null) checkKeyText(token.note, "a join token's note");
  try {
    const row = await db
      .insertInto("join_tokens")
      .values({
        id: token.id,
        token_sha256: token.tokenSha256,
        note: token.note,
        max_uses: token.maxUses,
        uses: 0,
        created_at: toMs(token.createdAt, "createdAt"),
        expires_at: toMs(token.expiresAt, "expiresAt"),
        revoked_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toJoinTokenRecord(row);
  } catch (err) {
    throw mapConstraintError(err, { conflict: "a join token with this id or hash exists" });
  }
}

export async function useJoinToken(db: Kysely<Database>, tokenSha256: string, at: Date): Promise<JoinTokenRecord | undefined> {
  // One statement: two registrations racing for the last use cannot both get it, on either dialect.
  const row = await db
    .updateTable("join_tokens")
    .set((eb) => ({ uses: eb("uses", "+", 1) }))
    .where("token_sha256", "=", tokenSha256)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", toMs(at, "at"))
    .whereRef("uses", "<", "max_uses")
    .returningAll()
    .executeTakeFirst();
  return row ? toJoinTokenRecord(row) : undefined;
}

export async function listJoinTokens(db: Kysely<Database>): Promise<JoinTokenRecord[]> {
  const rows = await db.selectFrom("join_tokens").selectAll().orderBy("created_at", "desc").orderBy("id").execute();
  return rows.map(toJoinTokenRecord);
}

export async function revokeJoinToken(db: Kysely<Database>, idOrPrefix: string, at: Date): Promise<boolean> {
  if (idOrPrefix.length < 6) return false;
  const matches = await db
    .selectFrom("join_tokens")
    .select("id")
    .where("revoked_at", "is", null)
    .where((eb) => eb.or([eb("id", "=", idOrPrefix), eb("id", "like", `${idOrPrefix.replace(/[%_\\]/g, "")}%`)]))
    .execute();
  if (matches.length !== 1) return false;
  const result = await db.updateTable("join_tokens").set({ revoked_at: toMs(at, "at") }).where("id", "=", matches[0]!.id).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
