import type { ErrorCode, StreamPart } from "@tessera/protocol";

/**
 * How workers report on the jobs they were assigned (the job manager implements it). Every call names the worker,
 * and a report about a job that is no longer on that worker is ignored, so a late or stray report cannot move
 * another worker's job. Reports arrive on the event loop, in the order the worker made them.
 */
export interface JobSink {
  /** The worker took the job and will stream it. */
  accepted(workerId: string, jobId: string): void;
  /** The worker declined the job before doing any work: it moves to another worker. */
  rejected(workerId: string, jobId: string, reason: string): void;
  /** One part of the job's answer, in order: text, tool calls, usage, the result commitment, the finish or an error. */
  part(workerId: string, jobId: string, part: StreamPart): void;
  /**
   * The worker (coordinator code, not a node) found that the job cannot run anywhere: it fails now with `code`,
   * without retries and without blaming the worker. A node's own errors are `error` parts, judged by the job manager.
   */
  failed(workerId: string, jobId: string, code: ErrorCode, message: string): void;
  /** The worker is gone (its session dropped, it went silent): every job it held continues elsewhere. */
  lost(workerId: string, reason: string): void;
}
