import type { Kysely, Selectable } from "kysely";
import { TesseraError } from "@tessera/protocol";
import { fromMs, mapConstraintError, toMs } from "./codec.js";
import type { Database, JobSegmentsTable } from "./schema.js";
import type { JobSegmentRecord, NewJobSegment } from "./types.js";

function toSegmentRecord(row: Selectable<JobSegmentsTable>): JobSegmentRecord {
  return {
    jobId: row.job_id,
    seq: Number(row.seq),
    nodeId: row.node_id,
    completionTokens: row.completion_tokens,
    startedAt: fromMs(row.started_at),
    endedAt: fromMs(row.ended_at),
    resultCommitment: row.result_commitment,
    resultSignature: row.result_signature,
  };
}

/**
 * Numbers the segment in the same statement that inserts it (previous max + 1), so no read-then-write gap exists.
 * Parameters in the select list are cast because Postgres would otherwise type them as text.
 */
export async function addJobSegment(db: Kysely<Database>, segment: NewJobSegment): Promise<JobSegmentRecord> {
  if (!Number.isInteger(segment.completionTokens) || segment.completionTokens < 0) {
    throw new TesseraError("bad_request", "completionTokens must be a non-negative integer");
  }
  const commitment = segment.resultCommitment ?? null;
  const signature = segment.resultSignature ?? null;
  if ((commitment === null) !== (signature === null) || (commitment !== null && !/^[0-9a-f]{64}$/.test(commitment)) || (signature !== null && !/^[0-9a-f]{128}$/.test(signature))) {
    throw new TesseraError("bad_request", "a result commitment is a 64-hex digest with its 128-hex signature, or neither");
  }
  const startedAt = toMs(segment.startedAt, "startedAt");
  const endedAt = toMs(segment.endedAt, "endedAt");
  try {
    const row = await db
      .insertInto("job_segments")
      .columns(["job_id", "seq", "node_id", "completion_tokens", "started_at", "ended_at", "result_commitment", "result_signature"])
      .expression((eb) =>
        eb
          .selectFrom("job_segments")
          .select((s) => [
            s.cast<string>(s.val(segment.jobId), "text").as("job_id"),
            s(s.fn.coalesce(s.fn.max<number>("seq"), s.lit(0)), "+", s.lit(1)).as("seq"),
            s.cast<string>(s.val(segment.nodeId), "text").as("node_id"),
            s.cast<number>(s.val(segment.completionTokens), "integer").as("completion_tokens"),
            s.cast<number>(s.val(startedAt), "bigint").as("started_at"),
            s.cast<number>(s.val(endedAt), "bigint").as("ended_at"),
            s.cast<string | null>(s.val(commitment), "text").as("result_commitment"),
            s.cast<string | null>(s.val(signature), "text").as("result_signature"),
          ])
          .where("job_id", "=", segment.jobId),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return toSegmentRecord(row);
  } catch (err) {
    throw mapConstraintError(err, {
      conflict: `a segment for job ${segment.jobId} was added concurrently; retry`,
      missingParent: `job ${segment.jobId} does not exist`,
    });
  }
}

export async function listJobSegments(db: Kysely<Database>, jobId: string): Promise<JobSegmentRecord[]> {
  const rows = await db.selectFrom("job_segments").selectAll().where("job_id", "=", jobId).orderBy("seq").execute();
  return rows.map(toSegmentRecord);
}
