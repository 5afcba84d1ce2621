import type { Kysely } from "kysely";
import { checkKeyText, fromMs, toMs } from "./codec.js";
import type { Database } from "./schema.js";
import type { QuarantineRelease } from "./types.js";

/** Records (or renews) the owner's request to lift a node's quarantine. */
export async function requestQuarantineRelease(db: Kysely<Database>, release: QuarantineRelease): Promise<void> {
  if (release.reason !== null) checkKeyText(release.reason, "a release's reason");
  const row = { node_id: release.nodeId, requested_at: toMs(release.requestedAt, "requestedAt"), reason: release.reason };
  await db
    .insertInto("quarantine_releases")
    .values(row)
    .onConflict((oc) => oc.column("node_id").doUpdateSet({ requested_at: row.requested_at, reason: row.reason }))
    .execute();
}

/** Every pending request, removed in the same statement (each is carried out once, by one coordinator). */
export async function takeQuarantineReleases(db: Kysely<Database>): Promise<QuarantineRelease[]> {
  const rows = await db.deleteFrom("quarantine_releases").returningAll().execute();
  return rows.map((r) => ({ nodeId: r.node_id, requestedAt: fromMs(r.requested_at), reason: r.reason }));
}
