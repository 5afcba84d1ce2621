import { ReplicaId } from "./bus-messages.js";

/**
 * An activation frame on the bus (`frames` subject, stage-relay.ts): the frame's bytes unchanged behind a small
 * header saying which way it goes, which replica sent it, and which node it is for or from.
 *
 *   u8 direction (1: to the node, 2: from the node) · u8 length · that many bytes of the sending replica's id (ASCII)
 *   · 32 bytes: the node id (its 64 hex characters as bytes) · the activation frame
 */
export type FrameDirection = "to_node" | "from_node";

export interface FrameEnvelope {
  direction: FrameDirection;
  from: string;
  node: string;
  /** A view into the message's bytes, not a copy. */
  frame: Uint8Array;
}

const NODE_ID_BYTES = 32;
const DIRECTION_BYTE: Record<FrameDirection, number> = { to_node: 1, from_node: 2 };

export function encodeFrameEnvelope(direction: FrameDirection, from: string, node: string, frame: Uint8Array): Uint8Array {
  const fromBytes = Buffer.from(from, "ascii");
  const out = new Uint8Array(2 + fromBytes.length + NODE_ID_BYTES + frame.length);
  out[0] = DIRECTION_BYTE[direction];
  out[1] = fromBytes.length;
  out.set(fromBytes, 2);
  out.set(Buffer.from(node, "hex"), 2 + fromBytes.length);
  out.set(frame, 2 + fromBytes.length + NODE_ID_BYTES);
  return out;
}

/**
 * The envelope in `data`, or undefined when it is not one (too short, an unknown direction, a sender that is not a
 * replica id: the sender names the subject answers go to, as in the JSON envelopes).
 */
export function decodeFrameEnvelope(data: Uint8Array): FrameEnvelope | undefined {
  if (data.length < 2) return undefined;
  const direction = data[0] === 1 ? "to_node" : data[0] === 2 ? "from_node" : undefined;
  const fromLength = data[1]!;
  const frameAt = 2 + fromLength + NODE_ID_BYTES;
  if (!direction || fromLength === 0 || data.length <= frameAt) return undefined;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.length);
  // latin1, not ascii: Node's ascii decoding drops each byte's high bit, which would turn 0xf2 into a valid "r".
  const from = bytes.toString("latin1", 2, 2 + fromLength);
  if (!ReplicaId.safeParse(from).success) return undefined;
  return {
    direction,
    from,
    node: bytes.toString("hex", 2 + fromLength, frameAt),
    frame: data.subarray(frameAt),
  };
}
