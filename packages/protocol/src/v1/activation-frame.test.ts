import { describe, expect, it } from "vitest";
import { TesseraError } from "../errors.js";
import { decodeActivationFrame, encodeActivationFrame, setActivationFrameStage } from "./activation-frame.js";

describe("activation frame codec", () => {
  it("round-trips F32 hidden states with positions and a copy of the caller's view", () => {
    const backing = new Float32Array([9, 1, 2, 3, 4, 5, 6, 9]);
    const view = backing.subarray(1, 7);
    const bytes = encodeActivationFrame({ requestId: "req-é", stageId: 7, seq: 3, rows: 2, cols: 3, positions: new Int32Array([4, 5]), dtype: "f32", data: view });
    backing.fill(0); // the encoder copied: reusing the stage's buffer cannot corrupt a frame in flight
    const frame = decodeActivationFrame(bytes);
    expect(frame).toMatchObject({ requestId: "req-é", stageId: 7, seq: 3, rows: 2, cols: 3, dtype: "f32" });
    expect([...frame.positions]).toEqual([4, 5]);
    expect([...frame.data]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("round-trips token ids and F16 bits, also from an unaligned buffer", () => {
    const bytes = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 3, cols: 1, positions: new Int32Array([0, 1, 2]), dtype: "i32", data: new Int32Array([1, 42, 31999]) });
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const frame = decodeActivationFrame(shifted.subarray(1));
    expect([...frame.data]).toEqual([1, 42, 31999]);
    // Node's pooled Buffers arrive at odd offsets too (ws hands them over as they are).
    const pooled = Buffer.concat([Buffer.alloc(3), Buffer.from(bytes)]).subarray(3);
    expect([...decodeActivationFrame(pooled).positions]).toEqual([0, 1, 2]);
    const half = decodeActivationFrame(encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 1, cols: 3, positions: new Int32Array([0]), dtype: "f16", data: new Uint16Array([0x3c00, 0xc000, 1]) }));
    expect([...half.data]).toEqual([0x3c00, 0xc000, 1]);
  });

  it("rewrites the stage id in place for the relay", () => {
    const bytes = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 1, cols: 1, positions: new Int32Array([0]), dtype: "f32", data: new Float32Array([1]) });
    setActivationFrameStage(bytes, 99);
    expect(decodeActivationFrame(bytes).stageId).toBe(99);
  });

  it("rejects malformed frames with bad_request", () => {
    const good = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 1, cols: 2, positions: new Int32Array([0]), dtype: "f32", data: new Float32Array([1, 2]) });
    const bad = [new Uint8Array(5), good.subarray(0, good.length - 4), Uint8Array.from(good, (b, i) => (i === 0 ? 0 : b)), Uint8Array.from(good, (b, i) => (i === 4 ? 9 : b))];
    for (const b of bad) {
      expect(() => decodeActivationFrame(b)).toThrow(TesseraError);
      try {
        decodeActivationFrame(b);
      } catch (err) {
        expect((err as TesseraError).code).toBe("bad_request");
      }
    }
  });
});
