import type { LiveNode } from "../registry.js";
import type { LiveJob } from "./live-job.js";

/**
 * The seam between the job machinery and the scheduling policy: which node (if any) should take this job now. Without
 * a node, `waitable: false` says the job should fail now rather than wait (every node that serves the model is
 * quarantined, which outlasts any request).
 */
export interface NodeChooser {
  choose(
    job: LiveJob,
    nodes: readonly LiveNode[],
    now: number,
    lookup: (nodeId: string) => LiveNode | undefined,
  ): { nodeId: string } | { nodeId?: undefined; reason: string; waitable?: boolean };
}
