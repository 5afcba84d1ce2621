import type { Assignment, Worker } from "../workers/worker.js";
import type { NodeSession } from "../workers/node-session.js";

/**
 * A node whose session is on this replica, as a worker: a job goes down the session as `job.assign`, a cancel as
 * `job.cancel`. The node's answers come back up the same session; the session hub turns them into `JobSink` calls.
 */
export class SessionWorker implements Worker {
  constructor(private readonly session: NodeSession) {}

  get id(): string {
    return this.session.nodeId;
  }

  assign(job: Assignment): void {
    this.session.send({ type: "job.assign", ...job });
  }

  cancel(jobId: string, reason: string): void {
    this.session.send({ type: "job.cancel", job_id: jobId, reason });
  }

  rtt(): number | undefined {
    return this.session.rttMs();
  }

  close(code: number, reason: string): void {
    this.session.close(code, reason);
  }
}
