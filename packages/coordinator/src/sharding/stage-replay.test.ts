import { describe, expect, it } from "vitest";
import { decodeActivationFrame, encodeActivationFrame } from "@tessera/protocol";
import { StageReplay } from "./stage-replay.js";

const frame = (seq: number, requestId = "job-1", stageId = 3) =>
  encodeActivationFrame({ requestId, stageId, seq, rows: 1, cols: 2, positions: Int32Array.of(seq), dtype: "f32", data: Float32Array.of(seq, seq + 0.5) });

function transport() {
  const binary: Array<{ nodeId: string; data: Uint8Array }> = [];
  const json: Array<{ nodeId: string; message: object }> = [];
  return {
    binary,
    json,
    sendBinary: (nodeId: string, data: Uint8Array) => (binary.push({ nodeId, data }), true),
    send: (nodeId: string, message: object) => (json.push({ nodeId, message }), true),
  };
}

describe("a replay of saved stage inputs", () => {
  it("sends the frames one after another's answer under its own id and the reference's stage id, then drops the id", async () => {
    const t = transport();
    const ended: string[] = [];
    const replay = new StageReplay("ref", 9, [frame(0), frame(1)], t, (r) => ended.push(r.requestId), () => undefined);
    expect(t.binary).toHaveLength(1);
    const first = decodeActivationFrame(t.binary[0]!.data);
    expect(first).toMatchObject({ requestId: replay.requestId, stageId: 9, seq: 0 });
    expect(replay.requestId).not.toBe("job-1");
    // An answer from another node, or for another step, is not this replay's.
    replay.onFrame("other", frame(0, replay.requestId, 9), decodeActivationFrame(frame(0, replay.requestId, 9)));
    replay.onFrame("ref", frame(1, replay.requestId, 9), decodeActivationFrame(frame(1, replay.requestId, 9)));
    expect(t.binary).toHaveLength(1);
    const a0 = frame(0, replay.requestId, 9);
    replay.onFrame("ref", a0, decodeActivationFrame(a0));
    expect(t.binary).toHaveLength(2);
    const a1 = frame(1, replay.requestId, 9);
    replay.onFrame("ref", a1, decodeActivationFrame(a1));
    expect(await replay.answer).toEqual([a0, a1]);
    expect(t.json).toEqual([{ nodeId: "ref", message: { type: "stage.drop", request_id: replay.requestId } }]);
    expect(ended).toEqual([replay.requestId]);
  });

  it("fails with the reference's stage.error or its lost session, and still drops the id", async () => {
    for (const end of ["error", "lost"] as const) {
      const t = transport();
      const replay = new StageReplay("ref", 9, [frame(0)], t, () => undefined, () => undefined);
      if (end === "error") replay.onStageError("ref", "bad_request", "activation frame: bad shape 0 x 2");
      else replay.onNodeLost("ref");
      await expect(replay.answer).rejects.toThrow(end === "error" ? /the reference answered stage.error: \[bad_request\] activation frame: bad shape/ : /session dropped/);
      expect(t.json).toHaveLength(1);
    }
  });
});
