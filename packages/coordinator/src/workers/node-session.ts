import type { CoordinatorMessage } from "@tessera/protocol";

/**
 * A node's live session: messages down to the node, and the measured round trip. Jobs go through the node's
 * `Worker` (sessions/session-worker.ts wraps this); everything else (checks, receipts, commands, stage traffic) is
 * sent here. The session hub's WebSocket session implements it; a session on another replica will, over the bus.
 */
export interface NodeSession {
  readonly nodeId: string;
  /**
   * When the node opened this session, in seconds on the node's own clock (the timestamp it signed the session's
   * upgrade with). Two replicas that both list the node (one has not yet noticed the node left it) are told apart by
   * it: the later session is the live one. Undefined for a session that was not opened by a signed upgrade.
   */
  readonly openedAt?: number;
  send(message: CoordinatorMessage): void;
  /** Activation frames of sharded models. */
  sendBinary(data: Uint8Array): void;
  /** Smoothed WebSocket ping round trip, milliseconds; undefined until measured. */
  rttMs(): number | undefined;
  close(code: number, reason: string): void;
}
