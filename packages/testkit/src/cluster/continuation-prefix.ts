/**
 * How many tokens the continuation of `jobId` was handed (the `prefix_tokens` of the coordinator's `job assigned`
 * line, from its JSON log). Throws when the log has no such line: a caller counting exact continuations must not count
 * a job it could not place as one.
 */
export function continuationPrefixTokens(coordinatorLog: string, jobId: string): number {
  for (const line of coordinatorLog.split("\n")) {
    if (!line.includes(jobId) || !line.includes('"prefix_tokens"')) continue;
    const record = JSON.parse(line) as { job?: string; prefix_tokens?: number };
    if (record.job === jobId && typeof record.prefix_tokens === "number") return record.prefix_tokens;
  }
  throw new Error(`the coordinator's log has no continuation of job ${jobId} (is it at log level info?)`);
}
