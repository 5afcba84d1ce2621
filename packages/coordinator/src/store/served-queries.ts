import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

/**
 * Jobs each node completed work for over its life here: its receipts, counted once per job (a job that failed over
 * counts for every node that served a part of it). Read through `receipts_node_status`. Nodes with none are 0.
 */
export async function countJobsServed(db: Kysely<Database>, nodeIds: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>(nodeIds.map((id) => [id, 0]));
  if (nodeIds.length === 0) return counts;
  const rows = await db
    .selectFrom("receipts")
    .select((eb) => ["node_id", eb.fn.count<number | string | bigint>("job_id").distinct().as("jobs")])
    .where("node_id", "in", [...nodeIds])
    .groupBy("node_id")
    .execute();
  for (const row of rows) counts.set(row.node_id, Number(row.jobs));
  return counts;
}
