import type { PullProgress } from "../adapter.js";

/**
 * One `/api/pull` NDJSON line → progress. Lines look like `{"status":"pulling manifest"}` or
 * `{"status":"pulling 6a0746a1ec1a","digest":"sha256:…","total":4683073184,"completed":241970}`; the last is
 * `{"status":"success"}`. Byte counts are per layer (Ollama pulls layers one after another).
 */
export function mapPullProgress(line: { status?: unknown; total?: unknown; completed?: unknown }): PullProgress {
  const progress: PullProgress = { status: typeof line.status === "string" ? line.status : "" };
  if (typeof line.total === "number") progress.totalBytes = line.total;
  if (typeof line.completed === "number") progress.completedBytes = line.completed;
  return progress;
}
