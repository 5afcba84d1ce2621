import type { Assignment, Worker } from "../workers/worker.js";
import type { JobCommand } from "./bus-messages.js";

/**
 * A node whose session is on another replica, as a worker: an assignment or a cancel travels over the bus to that
 * replica (its `commands` subject), which hands it to the node's session; the node's reports come back on this
 * replica's `reports` subject (replica-link.ts) and become JobSink calls like a local node's.
 */
export class RemoteWorker implements Worker {
  constructor(
    readonly id: string,
    /** The replica that holds the node's session. */
    readonly replica: string,
    private readonly send: (to: string, command: JobCommand) => void,
    private readonly self: string,
  ) {}

  assign(job: Assignment): void {
    this.send(this.replica, { type: "assign", from: this.self, node: this.id, job: { type: "job.assign", ...job } });
  }

  cancel(jobId: string, reason: string): void {
    this.send(this.replica, { type: "cancel", from: this.self, node: this.id, job_id: jobId, reason: reason.slice(0, 500) });
  }

  /** Not measured across replicas yet: the scheduler uses its prior. */
  rtt(): number | undefined {
    return undefined;
  }

  /**
   * Nothing to close here: the session is the other replica's. Called when this replica stops routing to the node
   * through that replica (the node moved, or its replica went silent).
   */
  close(): void {}
}
