import type { JobSink } from "../workers/job-sink.js";
import type { Assignment, Worker } from "../workers/worker.js";
import type { PublishOutcome } from "./bus.js";
import type { JobCommand } from "./bus-messages.js";

/**
 * A node whose session is on another replica, as a worker: an assignment or a cancel travels over the bus to that
 * replica (its `commands` subject), which hands it to the node's session; the node's reports come back on this
 * replica's `reports` subject (replica-link.ts) and become JobSink calls like a local node's.
 */
export class RemoteWorker implements Worker {
  /** The node session's round trip on its replica, from that replica's last beat. */
  nodeRttMs: number | undefined;
  /** The bus's round trip between this replica and the node's, as this replica measured it (replica-link.ts). */
  busRttMs: number | undefined;

  constructor(
    readonly id: string,
    /** The replica that holds the node's session. */
    readonly replica: string,
    private readonly send: (to: string, command: JobCommand) => PublishOutcome,
    private readonly self: string,
    /** Where this worker reports an assignment the bus refused (the job manager). */
    private readonly jobs: Pick<JobSink, "rejected">,
    /** This replica stops routing to the node through `replica`: the jobs it ran that way are gone with that route. */
    private readonly onClose: (nodeId: string, reason: string) => void,
  ) {}

  /**
   * An assignment the bus refuses (a prompt larger than the bus carries, the bus closing) never reaches the
   * node: it is that node rejecting the job, so the job moves to another node (one held here takes any size) or fails
   * as the scheduler decides. Reported on a microtask: the job manager is still inside its dispatch.
   */
  assign(job: Assignment): void {
    const outcome = this.send(this.replica, { type: "assign", from: this.self, node: this.id, job: { type: "job.assign", ...job } });
    if (outcome === "sent") return;
    const reason = outcome === "too_large" ? "the job's assignment is larger than the bus carries" : "the bus to the node's replica is closed";
    queueMicrotask(() => this.jobs.rejected(this.id, job.job_id, reason));
  }

  cancel(jobId: string, reason: string): void {
    this.send(this.replica, { type: "cancel", from: this.self, node: this.id, job_id: jobId, reason: reason.slice(0, 500) });
  }

  /**
   * What a round trip to the node costs from here: its session's on its replica (that replica's beat says it) plus the
   * bus's round trip to that replica, so routing weighs the extra hops against a node held here. Undefined until the
   * node's replica measured its session.
   */
  rtt(): number | undefined {
    return this.nodeRttMs === undefined ? undefined : this.nodeRttMs + (this.busRttMs ?? 0);
  }

  /**
   * The session is the other replica's, so nothing closes there. Called when this replica stops routing to the node
   * through that replica: the node's session moved here or to a third replica (the registry attaches the new worker),
   * or the node went silent. No `lost` will come over the bus for the jobs sent this way, so they are reported lost
   * here and continue elsewhere, possibly on the same node through its new route.
   */
  close(_code: number, reason: string): void {
    this.onClose(this.id, `its route through replica ${this.replica} closed: ${reason}`);
  }
}
