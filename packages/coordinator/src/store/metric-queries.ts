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

/** Where a run of samples leaves an EWMA: `value * keep + add`. */
interface Fold {
  keep: number;
  add: number;
}

/** `samples` folded, in order, into an EWMA of any prior value. */
function foldOf(samples: readonly number[]): Fold {
  let keep = 1;
  let add = 0;
  for (const s of samples) {
    keep *= 1 - METRICS_EWMA_ALPHA;
    add = add * (1 - METRICS_EWMA_ALPHA) + METRICS_EWMA_ALPHA * s;
  }
  return { keep, add };
}

/** `samples` folded with no prior value: the first is taken as is, later ones blend in. */
function firstFoldOf(samples: readonly number[]): number {
  if (samples.length === 0) return 0;
  const rest = foldOf(samples.slice(1));
  return samples[0]! * rest.keep + rest.add;
}

/**
 * One atomic upsert for a run of samples of one node and model, in the order they were measured, as if each had been
 * recorded alone: the first sample ever is taken as is, later ones blend in with weight alpha. A sample without a
 * decode rate (a one-token job, `tokensPerSecond` 0) leaves the rate as it was, as SpeedMetrics does in memory. The
 * coordinator writes a node's samples in batches (jobs/speed-writes.ts), so the statement is the same whatever their
 * number: the batch's effect is two figures per column, bound as parameters.
 */
export async function recordJobMetrics(
  db: Kysely<Database>,
  nodeId: string,
  model: string,
  samples: readonly JobMetricsSample[],
  at: Date,
): Promise<NodeModelMetrics> {
  checkKeyText(model, "model");
  if (samples.length === 0) throw new TesseraError("bad_request", "no samples to record");
  for (const sample of samples) {
    for (const [name, value] of Object.entries(sample)) {
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        throw new TesseraError("bad_request", `${name} must be a finite non-negative number`);
      }
    }
  }
  const rates = samples.map((s) => s.tokensPerSecond).filter((r) => r > 0);
  const ttfts = samples.map((s) => s.ttftMs);
  const rate = foldOf(rates);
  const ttft = foldOf(ttfts);
  const row = await db
    .insertInto("node_model_metrics")
    .values({
      node_id: nodeId,
      model,
      tokens_per_second: rates.length > 0 ? firstFoldOf(rates) : 0,
      ttft_ms: firstFoldOf(ttfts),
      samples: samples.length,
      updated_at: toMs(at, "at"),
    })
    .onConflict((oc) =>
      oc.columns(["node_id", "model"]).doUpdateSet({
        tokens_per_second: sql<number>`node_model_metrics.tokens_per_second * ${rate.keep} + ${rate.add}`,
        ttft_ms: sql<number>`node_model_metrics.ttft_ms * ${ttft.keep} + ${ttft.add}`,
        samples: sql<number>`node_model_metrics.samples + excluded.samples`,
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
