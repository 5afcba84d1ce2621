import { sql, type Kysely, type Selectable, type Updateable } from "kysely";
import { TesseraError, type ChatMessage, type ErrorCode, type JobStatus, type Sampling } from "@tessera/protocol";
import { fromJson, fromMs, fromMsOrNull, mapConstraintError, toJson, toMs, toMsOrNull, toNumber } from "./codec.js";
import type { Database, JobsTable } from "./schema.js";
import type { JobListFilter, JobPatch, JobRecord, NewJob } from "./types.js";

export const MAX_LIST_LIMIT = 1000;
const FINISHED: JobStatus[] = ["completed", "failed"];
const UNFINISHED: JobStatus[] = ["pending", "processing"];

function toJobRecord(row: Selectable<JobsTable>): JobRecord {
  return {
    id: row.id,
    ownerId: row.owner_id,
    model: row.model,
    status: row.status as JobStatus,
    messages: row.messages === null ? null : fromJson<ChatMessage[]>(row.messages),
    promptSha256: row.prompt_sha256,
    sampling: fromJson<Sampling>(row.sampling),
    nodeId: row.node_id,
    content: row.content,
    outputSha256: row.output_sha256,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    error: row.error as ErrorCode | null,
    errorMessage: row.error_message,
    createdAt: fromMs(row.created_at),
    startedAt: fromMsOrNull(row.started_at),
    completedAt: fromMsOrNull(row.completed_at),
    latencyMs: row.latency_ms === null ? null : Number(row.latency_ms),
    contentExpiresAt: fromMsOrNull(row.content_expires_at),
  };
}

export async function insertJob(db: Kysely<Database>, job: NewJob): Promise<void> {
  try {
    await db
      .insertInto("jobs")
      .values({
        id: job.id,
        owner_id: job.ownerId,
        model: job.model,
        status: job.status ?? "pending",
        messages: toJson(job.messages),
        prompt_sha256: job.promptSha256,
        sampling: toJson(job.sampling),
        node_id: job.nodeId ?? null,
        content: null,
        output_sha256: null,
        prompt_tokens: null,
        completion_tokens: null,
        error: null,
        error_message: null,
        created_at: toMs(job.createdAt, "createdAt"),
        started_at: null,
        completed_at: null,
        latency_ms: null,
        content_expires_at: toMsOrNull(job.contentExpiresAt, "contentExpiresAt"),
      })
      .execute();
  } catch (err) {
    throw mapConstraintError(err, { conflict: `job ${job.id} already exists` });
  }
}

/** Only the fields present in the patch are written, so concurrent writers of different fields do not collide. */
function patchColumns(patch: JobPatch): Updateable<JobsTable> {
  const set: Updateable<JobsTable> = {};
  if (patch.status !== undefined) set.status = patch.status;
  if (patch.nodeId !== undefined) set.node_id = patch.nodeId;
  if (patch.content !== undefined) set.content = patch.content;
  if (patch.outputSha256 !== undefined) set.output_sha256 = patch.outputSha256;
  if (patch.promptTokens !== undefined) set.prompt_tokens = patch.promptTokens;
  if (patch.completionTokens !== undefined) set.completion_tokens = patch.completionTokens;
  if (patch.error !== undefined) set.error = patch.error;
  if (patch.errorMessage !== undefined) set.error_message = patch.errorMessage;
  if (patch.startedAt !== undefined) set.started_at = toMsOrNull(patch.startedAt, "startedAt");
  if (patch.completedAt !== undefined) set.completed_at = toMsOrNull(patch.completedAt, "completedAt");
  if (patch.latencyMs !== undefined) set.latency_ms = patch.latencyMs;
  if (patch.contentExpiresAt !== undefined) {
    set.content_expires_at = toMsOrNull(patch.contentExpiresAt, "contentExpiresAt");
  }
  return set;
}

export async function updateJob(
  db: Kysely<Database>,
  id: string,
  patch: JobPatch,
  options: { ifStatus?: readonly JobStatus[] } = {},
): Promise<boolean> {
  const set = patchColumns(patch);
  if (Object.keys(set).length === 0) throw new TesseraError("bad_request", "updateJob needs at least one field to change");
  let query = db.updateTable("jobs").set(set).where("id", "=", id);
  if (options.ifStatus !== undefined) {
    if (options.ifStatus.length === 0) return false;
    query = query.where("status", "in", options.ifStatus);
  }
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function getJob(db: Kysely<Database>, id: string): Promise<JobRecord | undefined> {
  const row = await db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toJobRecord(row) : undefined;
}

export async function listJobs(db: Kysely<Database>, ownerId: string, filter: JobListFilter): Promise<JobRecord[]> {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > MAX_LIST_LIMIT) {
    throw new TesseraError("bad_request", `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  let query = db.selectFrom("jobs").selectAll().where("owner_id", "=", ownerId);
  if (filter.status !== undefined) query = query.where("status", "=", filter.status);
  if (filter.since !== undefined) query = query.where("created_at", ">=", toMs(filter.since, "since"));
  // id breaks ties between jobs created in the same millisecond, so pages are stable.
  const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(filter.limit).execute();
  return rows.map(toJobRecord);
}

export async function expireJobContent(db: Kysely<Database>, now: Date): Promise<number> {
  const result = await db
    .updateTable("jobs")
    .set({ messages: null, content: null })
    .where("content_expires_at", "<=", toMs(now, "now"))
    .where("status", "in", FINISHED)
    // Same predicate as the partial index jobs_content_expiry (migrations/0001-initial.ts).
    .where(sql<boolean>`(messages is not null or content is not null)`)
    .executeTakeFirst();
  return toNumber(result.numUpdatedRows);
}

export async function failStaleJobs(
  db: Kysely<Database>,
  cutoff: Date,
  now: Date,
  message = "the job did not finish within the time limit",
): Promise<string[]> {
  const nowMs = toMs(now, "now");
  const rows = await db
    .updateTable("jobs")
    .set({ status: "failed", error: "timeout" satisfies ErrorCode, error_message: message, completed_at: nowMs })
    .where("status", "in", UNFINISHED)
    .where("created_at", "<", toMs(cutoff, "cutoff"))
    .returning("id")
    .execute();
  return rows.map((r) => r.id).sort();
}
