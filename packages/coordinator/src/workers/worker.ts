import type { JobAssignment } from "@tessera/protocol";

/** A job as a worker takes it: the job's assignment, less the wire message's `type`. */
export type Assignment = Omit<JobAssignment, "type">;

/**
 * Anything a job can be assigned to: a node whose session is on this replica (sessions/session-worker.ts), a pipeline
 * of stage nodes for a sharded model (sharding/pipeline-worker.ts), and later a node whose session is on another
 * replica, reached over the bus. The scheduler sees each as a node in the registry; a worker answers through the
 * `JobSink` it was given (job-sink.ts), never with a return value, so a remote one fits the same port.
 */
export interface Worker {
  /** The node id the registry and the scheduler know it by (a pipeline's is derived from its model file). */
  readonly id: string;
  /** Starts the job; the worker answers with `accepted` or `rejected`, then parts. */
  assign(job: Assignment): void;
  /** Stops the job (its turn is over, for `reason`); nothing more is expected of it. */
  cancel(jobId: string, reason: string): void;
  /** Smoothed round trip to the worker, milliseconds; undefined until measured. */
  rtt(): number | undefined;
  /** Takes the worker off the network (replaced by a newer session, evicted, silent). */
  close(code: number, reason: string): void;
}
