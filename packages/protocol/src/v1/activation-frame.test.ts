import { describe, expect, it } from "vitest";
import { TesseraError } from "../errors.js";
import {
  answerActivationFrameInPlace,
  ACTIVATION_FLAG_SAMPLE,
  ACTIVATION_FLAG_SAMPLED,
  decodeActivationFrame,
  encodeActivationFrame,
  setActivationFrameSampling,
  setActivationFrameStage,
} from "./activation-frame.js";

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

  it("answers a middle stage's frame in place: same request, seq, rows and positions; new data and compute time", () => {
    const positions = new Int32Array([4, 5]);
    const bytes = encodeActivationFrame({ requestId: "req-1", stageId: 3, seq: 8, rows: 2, cols: 2, positions, dtype: "f32", data: new Float32Array([1, 2, 3, 4]) });
    setActivationFrameSampling(bytes, { temperature: 0.5, topP: 1, rngState: 1 });
    // Also from a buffer at an odd offset, where the decoder's data view is a copy.
    const shifted = Buffer.concat([Buffer.alloc(1), Buffer.from(bytes)]).subarray(1);
    for (const buf of [bytes, shifted]) {
      const answer = answerActivationFrameInPlace(buf, decodeActivationFrame(buf), new Float32Array([9, 8, 7, 6]), 1234.4);
      expect(answer).toBe(buf);
      const f = decodeActivationFrame(answer);
      expect(f).toMatchObject({ requestId: "req-1", stageId: 3, seq: 8, rows: 2, cols: 2, dtype: "f32", flags: 0, computeUs: 1234, nodeUs: 0 });
      expect([...f.positions]).toEqual([4, 5]);
      expect([...f.data]).toEqual([9, 8, 7, 6]);
    }
    const frame = decodeActivationFrame(bytes);
    expect(() => answerActivationFrameInPlace(bytes, frame, new Float32Array(3), 0)).toThrow(/needs 2 x 2 F32 values, got 3/);
    const tokens = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 1, cols: 1, positions: new Int32Array([0]), dtype: "i32", data: new Int32Array([5]) });
    expect(() => answerActivationFrameInPlace(tokens, decodeActivationFrame(tokens), new Float32Array(1), 0)).toThrow(TesseraError);
  });

  it("decodes the request id of frames that alternate between requests", () => {
    const frame = (id: string) => encodeActivationFrame({ requestId: id, stageId: 1, seq: 0, rows: 1, cols: 1, positions: new Int32Array([0]), dtype: "f32", data: new Float32Array([1]) });
    const [a, b, a2] = [frame("req-a"), frame("req-b"), frame("req-a")];
    expect([a, b, a2, b, a].map((f) => decodeActivationFrame(f).requestId)).toEqual(["req-a", "req-b", "req-a", "req-b", "req-a"]);
    const bad = frame("req-c");
    bad[56] = 0xff; // not UTF-8, though as long as a cached id
    expect(() => decodeActivationFrame(bad)).toThrow(/request id is not UTF-8/);
  });

  it("rewrites the stage id in place for the relay", () => {
    const bytes = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 1, cols: 1, positions: new Int32Array([0]), dtype: "f32", data: new Float32Array([1]) });
    setActivationFrameStage(bytes, 99);
    expect(decodeActivationFrame(bytes).stageId).toBe(99);
  });

  it("carries the request's exact sampling parameters to the last stage, set in place by the relay", () => {
    const bytes = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 4, rows: 1, cols: 2, positions: new Int32Array([9]), dtype: "f32", data: new Float32Array([1, 2]) });
    expect(decodeActivationFrame(bytes).flags & ACTIVATION_FLAG_SAMPLE).toBe(0);
    setActivationFrameSampling(bytes, { temperature: 0.7, topP: 0.9, rngState: 0xdeadbeef });
    const f = decodeActivationFrame(bytes);
    // f64 on the wire: 0.7 stays 0.7 (an f32 would sample a slightly different distribution).
    expect(f).toMatchObject({ flags: ACTIVATION_FLAG_SAMPLE, temperature: 0.7, topP: 0.9, rngState: 0xdeadbeef });
    expect([...f.data]).toEqual([1, 2]);
    setActivationFrameSampling(bytes, undefined);
    expect(decodeActivationFrame(bytes).flags & ACTIVATION_FLAG_SAMPLE).toBe(0);
  });

  it("carries a sampled token with the advanced PRNG state, its logit and the row's scale, and the node's timing", () => {
    const bytes = encodeActivationFrame({
      requestId: "r", stageId: 2, seq: 5, rows: 1, cols: 1, positions: new Int32Array([17]), dtype: "i32", data: new Int32Array([31999]),
      flags: ACTIVATION_FLAG_SAMPLED, rngState: 123, nodeUs: 5400.4, computeUs: 5210, tokenLogit: -3.25, logitScale: 17.5,
    });
    expect(bytes.byteLength).toBe(56 + 4 + 4 + 4);
    expect(decodeActivationFrame(bytes)).toMatchObject({ flags: ACTIVATION_FLAG_SAMPLED, rngState: 123, nodeUs: 5400, computeUs: 5210, seq: 5, tokenLogit: -3.25, logitScale: 17.5, temperature: 0, topP: 1 });
    // A request's sampling fields are not read as logits, nor the reverse.
    const request = encodeActivationFrame({ requestId: "r", stageId: 2, seq: 5, rows: 1, cols: 1, positions: new Int32Array([17]), dtype: "i32", data: new Int32Array([5]), flags: ACTIVATION_FLAG_SAMPLE, temperature: 0.7, topP: 0.9, tokenLogit: 4 });
    expect(decodeActivationFrame(request)).toMatchObject({ temperature: 0.7, topP: 0.9, tokenLogit: 0, logitScale: 0 });
    const many = encodeActivationFrame({ requestId: "r", stageId: 2, seq: 5, rows: 2, cols: 1, positions: new Int32Array([1, 2]), dtype: "i32", data: new Int32Array([1, 2]), flags: ACTIVATION_FLAG_SAMPLED });
    expect(() => decodeActivationFrame(many)).toThrow(/one token/);
  });

  it("rejects frames of earlier versions and bad sampling parameters with a clear bad_request", () => {
    const bytes = encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: 1, cols: 1, positions: new Int32Array([0]), dtype: "f32", data: new Float32Array([1]) });
    for (const [magic, version] of [[0x31415354, /version 1 \(TSA1\).*upgrade the node/], [0x32415354, /version 2 \(TSA2\).*upgrade the node/]] as const) {
      const old = Uint8Array.from(bytes);
      new DataView(old.buffer).setUint32(0, magic, true);
      expect(() => decodeActivationFrame(old)).toThrow(version);
    }
    setActivationFrameSampling(bytes, { temperature: -1, topP: 1, rngState: 0 });
    expect(() => decodeActivationFrame(bytes)).toThrow(/sampling parameters/);
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
