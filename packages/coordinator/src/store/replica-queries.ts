import type { Kysely, Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, toMs, toNumber } from "./codec.js";
import type { CoordinatorReplicasTable, Database } from "./schema.js";
import type { ReplicaLease } from "./types.js";

function toLease(row: Selectable<CoordinatorReplicasTable>): ReplicaLease {
  return { id: row.id, instance: row.instance, address: row.address, startedAt: fromMs(row.started_at), lastSeenAt: fromMs(row.last_seen_at) };
}

/**
 * One upsert that only overwrites a row held by the same instance or lapsed before `staleBefore`, so two processes
 * racing for one id cannot both win (on PostgreSQL the row lock orders them; SQLite has one writer).
 */
export async function claimReplicaLease(
  db: Kysely<Database>,
  lease: ReplicaLease,
  staleBefore: Date,
): Promise<{ claimed: true } | { claimed: false; holder: ReplicaLease }> {
  checkKeyText(lease.address, "a replica's address");
  const row = {
    id: lease.id,
    instance: lease.instance,
    address: lease.address,
    started_at: toMs(lease.startedAt, "startedAt"),
    last_seen_at: toMs(lease.lastSeenAt, "lastSeenAt"),
  };
  const stale = toMs(staleBefore, "staleBefore");
  const result = await db
    .insertInto("coordinator_replicas")
    .values(row)
    .onConflict((oc) =>
      oc
        .column("id")
        .doUpdateSet({ instance: row.instance, address: row.address, started_at: row.started_at, last_seen_at: row.last_seen_at })
        .where((eb) => eb.or([eb("coordinator_replicas.instance", "=", row.instance), eb("coordinator_replicas.last_seen_at", "<", stale)])),
    )
    .executeTakeFirst();
  if (toNumber(result.numInsertedOrUpdatedRows) > 0) return { claimed: true };
  const holder = await db.selectFrom("coordinator_replicas").selectAll().where("id", "=", lease.id).executeTakeFirst();
  // Released between the two statements: the next claim takes it.
  if (!holder) return claimReplicaLease(db, lease, staleBefore);
  return { claimed: false, holder: toLease(holder) };
}

export async function renewReplicaLease(db: Kysely<Database>, id: string, instance: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable("coordinator_replicas")
    .set({ last_seen_at: toMs(at, "at") })
    .where("id", "=", id)
    .where("instance", "=", instance)
    .executeTakeFirst();
  return toNumber(result.numUpdatedRows) > 0;
}

export async function releaseReplicaLease(db: Kysely<Database>, id: string, instance: string): Promise<boolean> {
  const result = await db.deleteFrom("coordinator_replicas").where("id", "=", id).where("instance", "=", instance).executeTakeFirst();
  return toNumber(result.numDeletedRows) > 0;
}

export async function listReplicaLeases(db: Kysely<Database>): Promise<ReplicaLease[]> {
  const rows = await db.selectFrom("coordinator_replicas").selectAll().orderBy("id").execute();
  return rows.map(toLease);
}

/** `insert … on conflict do nothing`: the primary key (node_key, nonce) decides, atomically, who used it first. */
export async function claimNodeNonce(db: Kysely<Database>, nodeKey: string, nonce: string, expiresAt: Date): Promise<boolean> {
  const result = await db
    .insertInto("node_nonces")
    .values({ node_key: nodeKey, nonce, expires_at: toMs(expiresAt, "expiresAt") })
    .onConflict((oc) => oc.columns(["node_key", "nonce"]).doNothing())
    .executeTakeFirst();
  return toNumber(result.numInsertedOrUpdatedRows) > 0;
}

/**
 * Many claims in one statement (one round trip, one commit): the rows that came back were inserted. A pair given twice
 * in one call is claimed by its first occurrence only, as if the calls had been made one after another.
 */
export async function claimNodeNonces(
  db: Kysely<Database>,
  claims: ReadonlyArray<{ nodeKey: string; nonce: string; expiresAt: Date }>,
): Promise<boolean[]> {
  if (claims.length === 0) return [];
  const pair = (key: string, nonce: string) => `${key}\u0000${nonce}`;
  const first = new Map<string, number>();
  claims.forEach((c, i) => {
    if (!first.has(pair(c.nodeKey, c.nonce))) first.set(pair(c.nodeKey, c.nonce), i);
  });
  const rows = await db
    .insertInto("node_nonces")
    .values([...first.values()].map((i) => ({ node_key: claims[i]!.nodeKey, nonce: claims[i]!.nonce, expires_at: toMs(claims[i]!.expiresAt, "expiresAt") })))
    .onConflict((oc) => oc.columns(["node_key", "nonce"]).doNothing())
    .returning(["node_key", "nonce"])
    .execute();
  const inserted = new Set(rows.map((r) => pair(r.node_key, r.nonce)));
  return claims.map((c, i) => first.get(pair(c.nodeKey, c.nonce)) === i && inserted.has(pair(c.nodeKey, c.nonce)));
}

export async function pruneNodeNonces(db: Kysely<Database>, now: Date): Promise<number> {
  const result = await db.deleteFrom("node_nonces").where("expires_at", "<=", toMs(now, "now")).executeTakeFirst();
  return toNumber(result.numDeletedRows);
}

export async function settleSetting(db: Kysely<Database>, key: string, proposed: string): Promise<string> {
  for (const [what, text] of [["a setting's key", key], ["a setting's value", proposed]] as const) {
    if (!/^[\x20-\x7e]{1,200}$/.test(text)) throw new TesseraError("bad_request", `${what} must be 1 to 200 printable ASCII characters`);
  }
  await db.insertInto("coordinator_settings").values({ key, value: proposed }).onConflict((oc) => oc.column("key").doNothing()).execute();
  const row = await db.selectFrom("coordinator_settings").select("value").where("key", "=", key).executeTakeFirstOrThrow();
  return row.value;
}
