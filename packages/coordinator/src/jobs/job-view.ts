import type { JobView } from "@tessera/protocol";
import type { JobRecord } from "../store/types.js";
import type { LiveJob } from "./live-job.js";

/** The API's view of a job, from its live state (while this coordinator holds it) or its stored record. */
export function viewOfLiveJob(job: LiveJob): JobView {
  const view: JobView = { id: job.id, status: job.status, model: job.model, created_at: iso(job.createdAt) };
  const nodeId = job.attempt?.nodeId ?? job.segments.at(-1)?.nodeId;
  if (job.status !== "pending" && nodeId) view.node_id = nodeId;
  if (job.status === "completed") {
    const prompt = job.promptTokens ?? 0;
    view.result = { content: job.visibleText, usage: usage(prompt, job.completionTokens) };
    view.completed_at = iso(job.completedAt!);
    view.latency_ms = job.completedAt! - job.createdAt;
  }
  if (job.status === "failed" && job.error) {
    view.error = job.error.code;
    view.error_message = job.error.message;
  }
  return view;
}

export function viewOfJobRecord(record: JobRecord): JobView {
  const view: JobView = { id: record.id, status: record.status, model: record.model, created_at: record.createdAt.toISOString() };
  if (record.status !== "pending" && record.nodeId) view.node_id = record.nodeId;
  if (record.status === "completed") {
    view.result = { content: record.content ?? "", usage: usage(record.promptTokens ?? 0, record.completionTokens ?? 0) };
    if (record.completedAt) view.completed_at = record.completedAt.toISOString();
    if (record.latencyMs !== null) view.latency_ms = record.latencyMs;
  }
  if (record.status === "failed") {
    view.error = record.error ?? "internal_error";
    view.error_message = record.errorMessage ?? "";
  }
  return view;
}

function usage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
