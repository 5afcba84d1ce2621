import type { ErrorCode } from "@tessera/protocol";
import type { FilterReason, NoCandidateReason } from "./types.js";

/** The filter stages in the order `pick` applies them, each with the reason reported when it empties the field. */
export const FILTER_STAGES: ReadonlyArray<readonly [FilterReason, NoCandidateReason]> = [
  ["offline", "no_node_online"],
  ["model_not_served", "no_node_serves_model"],
  ["not_pinned", "pinned_node_unavailable"],
  ["quarantined", "all_quarantined"],
  ["draining", "all_draining"],
  ["excluded", "all_excluded"],
  ["busy", "all_busy"],
];

export function emptyRejections(): Record<FilterReason, number> {
  return { offline: 0, model_not_served: 0, not_pinned: 0, quarantined: 0, draining: 0, excluded: 0, busy: 0 };
}

/**
 * The wire error for a job nothing can run. Only a model that no node has ever registered is `model_not_found`;
 * everything else is `no_capacity` (503, retryable), because nodes come back, free slots and finish draining.
 */
export function errorCodeForNoCandidate(reason: NoCandidateReason, context: { modelKnown: boolean }): ErrorCode {
  if (reason === "no_node_serves_model" && !context.modelKnown) return "model_not_found";
  return "no_capacity";
}

/**
 * Whether keeping the job in `pending` can help. Quarantine outlasts a request, so that one fails at once; so does a
 * pinned job whose node has already failed it (stalled, timed out, lost), since no other node may take it.
 */
export function isWaitable(reason: NoCandidateReason, context: { modelKnown: boolean; pinned?: boolean }): boolean {
  if (reason === "all_quarantined") return false;
  if (reason === "all_excluded") return !context.pinned;
  if (reason === "no_node_serves_model") return context.modelKnown;
  return true;
}

export function noCandidateMessage(reason: NoCandidateReason, model: string, pinnedNodeId?: string): string {
  switch (reason) {
    case "no_node_online":
      return "no node is online";
    case "no_node_serves_model":
      return `no online node serves model "${model}"`;
    case "pinned_node_unavailable":
      return `node ${pinnedNodeId ?? "?"} is not online or does not serve model "${model}"`;
    case "all_quarantined":
      return `every node serving model "${model}" is quarantined`;
    case "all_draining":
      return `every node serving model "${model}" is draining`;
    case "all_excluded":
      return pinnedNodeId ? `node ${pinnedNodeId} has already failed this job and it may run on no other` : `every node serving model "${model}" has already failed this job`;
    case "all_busy":
      return `every node serving model "${model}" is at its concurrency limit`;
  }
}
