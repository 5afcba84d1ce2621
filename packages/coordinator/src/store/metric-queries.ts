import { sql, type Kysely, type Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { checkKeyText, fromMs, toMs } from "./codec.js";
import type { Database, NodeModelMetricsTable } from "./schema.js";
import type { JobMetricsSample, NodeModelMetrics } from "./types.js";

/** Weight of the newest sample: recent speed matters most, one slow job moves the estimate by under a third. */
export const METRICS_EWMA_ALPHA = 0.3;

function toMetrics(row: Selectable<NodeModelMetricsTable>): NodeModelMetrics {
  return {
    nodeId: row.node_id,
    model: row.model,
    tokensPerSecond: Number(row.tokens_per_second),
    ttftMs: Number(row.ttft_ms),
    samples: Number(row.samples),
    updatedAt: fromMs(row.updated_at),
  };
}

/** One atomic upsert: the first sample is taken as is, later ones blend in with weight alpha. */
export async function recordJobMetrics(
  db: Kysely<Database>,
  nodeId: string,
  model: string,
  sample: JobMetricsSample,
  at: Date,
): Promise<NodeModelMetrics> {
  checkKeyText(model, "model");
  for (const [name, value] of Object.entries(sample)) {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new TesseraError("bad_request", `${name} must be a finite non-negative number`);
    }
  }
  const keep = sql.lit(1 - METRICS_EWMA_ALPHA);
  const take = sql.lit(METRICS_EWMA_ALPHA);
  const row = await db
    .insertInto("node_model_metrics")
    .values({
      node_id: nodeId,
      model,
      tokens_per_second: sample.tokensPerSecond,
      ttft_ms: sample.ttftMs,
      samples: 1,
      updated_at: toMs(at, "at"),
    })
    .onConflict((oc) =>
      oc.columns(["node_id", "model"]).doUpdateSet({
        tokens_per_second: sql<number>`node_model_metrics.tokens_per_second * ${keep} + excluded.tokens_per_second * ${take}`,
        ttft_ms: sql<number>`node_model_metrics.ttft_ms * ${keep} + excluded.ttft_ms * ${take}`,
        samples: sql<number>`node_model_metrics.samples + 1`,
        updated_at: sql<number>`excluded.updated_at`,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  return toMetrics(row);
}

export async function listNodeModelMetrics(
  db: Kysely<Database>,
  filter: { nodeId?: string } = {},
): Promise<NodeModelMetrics[]> {
  let query = db.selectFrom("node_model_metrics").selectAll();
  if (filter.nodeId !== undefined) query = query.where("node_id", "=", filter.nodeId);
  const rows = await query.orderBy("node_id").orderBy("model").execute();
  return rows.map(toMetrics);
}
