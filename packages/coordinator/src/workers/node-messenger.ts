import type { CoordinatorMessage } from "@tessera/protocol";

/**
 * What the coordinator sends a node outside its jobs: stage traffic, spot-check scoring, receipts to sign, node
 * commands, embedding requests. Jobs go through the node's `Worker`; pings are the session's own; `offer.refused`
 * answers an offer down the session it came on (sharding-manager.ts), never through another replica.
 */
export type NodeBoundMessage = Exclude<CoordinatorMessage, { type: "job.assign" | "job.cancel" | "ping" | "offer.refused" }>;

/**
 * How the coordinator reaches a node's session. Alone, a coordinator reaches the sessions it holds
 * (`sessionMessenger`, sessions/session-messenger.ts); with a bus, `SessionRelay` (bus/session-relay.ts) also reaches nodes held by other replicas,
 * and brings back their answers that this replica waits for.
 */
export interface NodeMessenger {
  /** Sends the message to the node; false when the node cannot be reached now. */
  send(nodeId: string, message: NodeBoundMessage): boolean;
  /** Sends an activation frame (sharded models) to the node; false when it cannot be reached now. */
  sendBinary(nodeId: string, data: Uint8Array): boolean;
  /** Whether a message can reach the node now. */
  reachable(nodeId: string): boolean;
  /** The node session's smoothed round trip, milliseconds, where it is measured (a session held here). */
  rttMs(nodeId: string): number | undefined;
}
