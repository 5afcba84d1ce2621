import { expect, it } from "vitest";
import { decodeFrameEnvelope, encodeFrameEnvelope } from "./stage-frame-envelope.js";

const NODE = "0123456789abcdef".repeat(4);

it("carries a frame, its direction, the sending replica and the node, and decodes to a view of the same bytes", () => {
  const frame = Uint8Array.from([84, 83, 65, 50, 1, 2, 3]);
  for (const direction of ["to_node", "from_node"] as const) {
    const data = encodeFrameEnvelope(direction, "r-a", NODE, frame);
    const decoded = decodeFrameEnvelope(data)!;
    expect(decoded).toMatchObject({ direction, from: "r-a", node: NODE });
    expect([...decoded.frame]).toEqual([...frame]);
    expect(decoded.frame.buffer).toBe(data.buffer);
  }
});

it("refuses what is not an envelope: too short, an unknown direction, no sender, no frame", () => {
  const good = encodeFrameEnvelope("to_node", "r-a", NODE, Uint8Array.of(1));
  expect(decodeFrameEnvelope(new Uint8Array(0))).toBeUndefined();
  expect(decodeFrameEnvelope(Uint8Array.of(1))).toBeUndefined();
  expect(decodeFrameEnvelope(Uint8Array.of(3, ...good.subarray(1)))).toBeUndefined();
  expect(decodeFrameEnvelope(Uint8Array.of(1, 0, ...good.subarray(5)))).toBeUndefined();
  expect(decodeFrameEnvelope(good.subarray(0, good.length - 1))).toBeUndefined();
});

it("refuses a sender that is not a replica id (it names the subject answers go to): a space, a newline, a capital, a high byte", () => {
  for (const from of ["r a", "r-a\n", "R-a", "r-\u00f2"]) {
    const data = encodeFrameEnvelope("to_node", "r-a", NODE, Uint8Array.of(1));
    const bogus = Uint8Array.of(data[0]!, from.length, ...Buffer.from(from, "latin1"), ...data.subarray(2 + 3));
    expect(decodeFrameEnvelope(bogus)).toBeUndefined();
  }
});
