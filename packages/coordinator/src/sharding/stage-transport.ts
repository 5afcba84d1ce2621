import type { StageCoordinatorMessage } from "@tessera/protocol";
import { DEFAULT_PATH_RTT_MS } from "../placement/index.js";
import type { NodeRegistry } from "../registry.js";

/**
 * How the sharding manager reaches a stage node: stage messages and activation frames down, and the round trip it
 * plans paths with. Alone, a coordinator reaches only the nodes whose sessions it holds (`sessionStageTransport`);
 * with a bus, `StageRelay` (bus/stage-relay.ts) also reaches nodes held by other replicas.
 */
export interface StageTransport {
  /** Sends a stage message to the node; false when it cannot be reached now. */
  sendJson(nodeId: string, message: StageCoordinatorMessage): boolean;
  /** Sends an activation frame to the node; false when it cannot be reached now. */
  sendBinary(nodeId: string, data: Uint8Array): boolean;
  /** Whether stage traffic can reach the node now. */
  reachable(nodeId: string): boolean;
  /** The round trip to the node, milliseconds (a prior where it is not measured). */
  rttMs(nodeId: string): number;
}

/** Stage traffic through the node sessions this coordinator holds. */
export function sessionStageTransport(registry: NodeRegistry): StageTransport {
  const session = (nodeId: string) => {
    const record = registry.get(nodeId);
    return record?.online ? record.session : undefined;
  };
  return {
    sendJson(nodeId, message) {
      const s = session(nodeId);
      s?.send(message);
      return s !== undefined;
    },
    sendBinary(nodeId, data) {
      const s = session(nodeId);
      s?.sendBinary(data);
      return s !== undefined;
    },
    reachable: (nodeId) => session(nodeId) !== undefined,
    rttMs: (nodeId) => registry.get(nodeId)?.session?.rttMs() ?? DEFAULT_PATH_RTT_MS,
  };
}
