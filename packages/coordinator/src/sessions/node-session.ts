import type { CoordinatorMessage } from "@tessera/protocol";

/** What the job machinery needs from a node's live session: a way to push messages and the measured round trip. */
export interface NodeSession {
  readonly nodeId: string;
  send(message: CoordinatorMessage): void;
  /** Smoothed WebSocket ping round trip, milliseconds; undefined until measured. */
  rttMs(): number | undefined;
  close(code: number, reason: string): void;
}
