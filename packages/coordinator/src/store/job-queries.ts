import { sql, type Kysely, type Selectable, type Updateable } from "kysely";
import { TesseraError, type ChatMessage, type ErrorCode, type JobStatus, type Sampling } from "@tessera/protocol";
import { fromJson, fromMs, fromMsOrNull, mapConstraintError, toJson, toMs, toMsOrNull, toNumber } from "./codec.js";
import { contentKeyId, envelopeKeyId, openContent, sealContent } from "./content-cipher.js";
import type { ContentKeyRing } from "./content-keys.js";
import type { Database, JobsTable } from "./schema.js";
import type { JobListFilter, JobPatch, JobRecord, JobWriteCondition, NewJob } from "./types.js";

export const MAX_LIST_LIMIT = 1000;
const FINISHED: JobStatus[] = ["completed", "failed"];
const UNFINISHED: JobStatus[] = ["pending", "processing"];

/** Content that cannot be decrypted (its key was shredded at expiry) reads as expired: `null`. */
function toJobRecord(keys: ContentKeyRing, row: Selectable<JobsTable>): JobRecord {
  return {
    id: row.id,
    ownerId: row.owner_id,
    model: row.model,
    status: row.status as JobStatus,
    messages: row.messages === null ? null : (openContent<ChatMessage[]>(keys, row.id, "messages", row.messages) ?? null),
    promptSha256: row.prompt_sha256,
    sampling: fromJson<Sampling>(row.sampling),
    nodeId: row.node_id,
    content: row.content === null ? null : (openContent<string>(keys, row.id, "content", row.content) ?? null),
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
    replicaId: row.replica_id,
  };
}

export async function insertJob(db: Kysely<Database>, keys: ContentKeyRing, job: NewJob): Promise<void> {
  const createdAt = toMs(job.createdAt, "createdAt");
  const expiresAt = toMsOrNull(job.contentExpiresAt, "contentExpiresAt");
  const messages = sealContent(keys, contentKeyId(expiresAt, createdAt), job.id, "messages", job.messages);
  try {
    await db
      .insertInto("jobs")
      .values({
        id: job.id,
        owner_id: job.ownerId,
        model: job.model,
        status: job.status ?? "pending",
        messages,
        prompt_sha256: job.promptSha256,
        sampling: toJson(job.sampling),
        node_id: job.nodeId ?? null,
        content: null,
        output_sha256: null,
        prompt_tokens: null,
        completion_tokens: null,
        error: null,
        error_message: null,
        created_at: createdAt,
        started_at: null,
        completed_at: null,
        latency_ms: null,
        content_expires_at: expiresAt,
        replica_id: job.replicaId ?? null,
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
  keys: ContentKeyRing,
  id: string,
  patch: JobPatch,
  options: JobWriteCondition = {},
): Promise<boolean> {
  const set = patchColumns(patch);
  if (patch.content === null) set.content = null;
  const sealsContent = typeof patch.content === "string";
  if (Object.keys(set).length === 0 && !sealsContent) {
    throw new TesseraError("bad_request", "updateJob needs at least one field to change");
  }
  if (options.ifStatus !== undefined && options.ifStatus.length === 0) return false;
  /**
   * With `expiry`, the row changes only while its expiry is still the one the content was sealed for (and, with
   * `createdAt`, only if it was created then: both choose the key).
   */
  const write = async (trx: Kysely<Database>, expiry?: { value: number | null; createdAt?: number }): Promise<boolean> => {
    let query = trx.updateTable("jobs").set(set).where("id", "=", id);
    if (options.ifStatus !== undefined) query = query.where("status", "in", options.ifStatus);
    if (options.ifReplica !== undefined) query = query.where("replica_id", "=", options.ifReplica);
    if (expiry !== undefined) {
      query = expiry.value === null ? query.where("content_expires_at", "is", null) : query.where("content_expires_at", "=", expiry.value);
      if (expiry.createdAt !== undefined) query = query.where("created_at", "=", expiry.createdAt);
    }
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  };
  if (!sealsContent && patch.contentExpiresAt === undefined) return write(db);
  // Content is sealed under the key of the row's expiry bucket, so the row's expiry is read first.
  const readRow = (trx: Kysely<Database>) =>
    trx.selectFrom("jobs").select(["messages", "created_at", "content_expires_at"]).where("id", "=", id).executeTakeFirst();
  if (patch.contentExpiresAt === undefined) {
    // The completion path: seal under the key of the expiry the row was created with (read first unless the caller
    // says what it was: `sealedAs`), and write only if the expiry is still that one (nobody changes it in practice);
    // no transaction. A row that did not change falls through to the careful path.
    let created: { expiresAt: number | null; createdAt: number } | undefined;
    if (options.sealedAs !== undefined) {
      created = { expiresAt: toMsOrNull(options.sealedAs.contentExpiresAt, "sealedAs.contentExpiresAt"), createdAt: toMs(options.sealedAs.createdAt, "sealedAs.createdAt") };
    } else {
      const row = await readRow(db);
      if (!row) return false;
      created = { expiresAt: row.content_expires_at === null ? null : Number(row.content_expires_at), createdAt: Number(row.created_at) };
    }
    set.content = sealContent(keys, contentKeyId(created.expiresAt, created.createdAt), id, "content", patch.content);
    if (await write(db, { value: created.expiresAt, ...(options.sealedAs !== undefined ? { createdAt: created.createdAt } : {}) })) return true;
  }
  // A new expiry moves the prompt to its new bucket's key: read and write in one transaction.
  return db.transaction().execute(async (trx) => {
    const row = await readRow(trx);
    if (!row) return false;
    const expiresAt = set.content_expires_at !== undefined ? (set.content_expires_at as number | null) : row.content_expires_at;
    const keyId = contentKeyId(expiresAt === null ? null : Number(expiresAt), Number(row.created_at));
    if (sealsContent) set.content = sealContent(keys, keyId, id, "content", patch.content);
    if (row.messages !== null && envelopeKeyId(row.messages) !== keyId) {
      const messages = openContent<ChatMessage[]>(keys, id, "messages", row.messages);
      set.messages = messages === undefined ? null : sealContent(keys, keyId, id, "messages", messages);
    }
    return write(trx);
  });
}

export async function getJob(db: Kysely<Database>, keys: ContentKeyRing, id: string): Promise<JobRecord | undefined> {
  const row = await db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toJobRecord(keys, row) : undefined;
}

export async function listJobs(
  db: Kysely<Database>,
  keys: ContentKeyRing,
  ownerId: string,
  filter: JobListFilter,
): Promise<JobRecord[]> {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > MAX_LIST_LIMIT) {
    throw new TesseraError("bad_request", `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  let query = db.selectFrom("jobs").selectAll().where("owner_id", "=", ownerId);
  if (filter.status !== undefined) query = query.where("status", "=", filter.status);
  if (filter.since !== undefined) query = query.where("created_at", ">=", toMs(filter.since, "since"));
  // id breaks ties between jobs created in the same millisecond, so pages are stable.
  const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(filter.limit).execute();
  return rows.map((row) => toJobRecord(keys, row));
}

/**
 * Drops the ciphertext of expired finished jobs, then destroys every bucket key whose bucket has ended, except the
 * buckets of jobs still running (their prompt may be needed for failover; such a job's key goes at the first sweep
 * after it finishes). Once a key is gone, no copy of a ciphertext sealed under it can be read, wherever it lingers.
 */
export async function expireJobContent(db: Kysely<Database>, keys: ContentKeyRing, now: Date): Promise<number> {
  const nowMs = toMs(now, "now");
  const result = await db
    .updateTable("jobs")
    .set({ messages: null, content: null })
    .where("content_expires_at", "<=", nowMs)
    .where("status", "in", FINISHED)
    // Same predicate as the partial index jobs_content_expiry (migrations/0001-initial.ts).
    .where(sql<boolean>`(messages is not null or content is not null)`)
    .executeTakeFirst();
  const running = await db
    .selectFrom("jobs")
    .select(["created_at", "content_expires_at"])
    .where("status", "in", UNFINISHED)
    .where("content_expires_at", "<=", nowMs)
    .execute();
  const keep = new Set(running.map((r) => contentKeyId(Number(r.content_expires_at), Number(r.created_at))));
  keys.destroyEndedBy(nowMs, keep);
  return toNumber(result.numUpdatedRows);
}

const TIMEOUT: ErrorCode = "timeout";

/** Fails a replica's own unfinished jobs (and those of no replica, from before replicas) created before `cutoff`. */
export async function failOwnJobs(
  db: Kysely<Database>,
  replicaId: string,
  cutoff: Date,
  now: Date,
  message = "the job did not finish within the time limit",
): Promise<string[]> {
  const nowMs = toMs(now, "now");
  const rows = await db
    .updateTable("jobs")
    .set({ status: "failed", error: TIMEOUT, error_message: message, completed_at: nowMs })
    .where("status", "in", UNFINISHED)
    .where((eb) => eb.or([eb("replica_id", "=", replicaId), eb("replica_id", "is", null)]))
    .where("created_at", "<", toMs(cutoff, "cutoff"))
    .returning("id")
    .execute();
  return rows.map((r) => r.id).sort();
}

/**
 * Fails the unfinished jobs of every replica but `self` that holds no lease seen at or after `liveSince` (never an
 * unowned row). One
 * statement, so a replica whose lease is renewed meanwhile either keeps all its jobs or (having lapsed) loses them
 * before its renewal; its own final writes are conditional on `processing` and find them ended.
 */
export async function failJobsOfDeadReplicas(db: Kysely<Database>, self: string, liveSince: Date, now: Date, message: string): Promise<string[]> {
  const nowMs = toMs(now, "now");
  const live = toMs(liveSince, "liveSince");
  const rows = await db
    .updateTable("jobs")
    .set({ status: "failed", error: TIMEOUT, error_message: message, completed_at: nowMs })
    .where("status", "in", UNFINISHED)
    // Unowned rows (from before replicas) are left to the start-up of whichever replica comes next: a coordinator of
    // an earlier version still running beside this one writes such rows, and its running jobs are not dead.
    .where("replica_id", "is not", null)
    .where("replica_id", "<>", self)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("coordinator_replicas as r")
            .select("r.id")
            .whereRef("r.id", "=", "jobs.replica_id")
            .where("r.last_seen_at", ">=", live),
        ),
      ),
    )
    .returning("id")
    .execute();
  return rows.map((r) => r.id).sort();
}
