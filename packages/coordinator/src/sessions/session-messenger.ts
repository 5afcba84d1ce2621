import type { NodeRegistry } from "../registry.js";
import type { NodeMessenger } from "../workers/node-messenger.js";

/** Messages through the node sessions this coordinator holds. */
export function sessionMessenger(registry: Pick<NodeRegistry, "get">): NodeMessenger {
  const session = (nodeId: string) => {
    const record = registry.get(nodeId);
    return record?.online ? record.session : undefined;
  };
  return {
    send(nodeId, message) {
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
    rttMs: (nodeId) => registry.get(nodeId)?.session?.rttMs(),
  };
}
