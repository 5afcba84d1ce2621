import { describe, expect, it } from "vitest";
import { FrameBatcher } from "./frame-batcher.js";

const turn = () => new Promise((r) => setImmediate(r));

describe("FrameBatcher", () => {
  it("sends a lone frame as it is and frames of one loop turn as one array frame, in order", async () => {
    const written: string[] = [];
    const batcher = new FrameBatcher((f) => written.push(f));
    batcher.send('{"type":"a"}');
    await turn();
    batcher.send('{"type":"b"}');
    batcher.send('{"type":"c"}');
    expect(written).toEqual(['{"type":"a"}']);
    await turn();
    expect(written).toEqual(['{"type":"a"}', '[{"type":"b"},{"type":"c"}]']);
    expect(JSON.parse(written[1]!)).toEqual([{ type: "b" }, { type: "c" }]);
  });

  it("flushes on demand (before a close or a binary frame)", () => {
    const written: string[] = [];
    const batcher = new FrameBatcher((f) => written.push(f));
    batcher.send('{"type":"goodbye"}');
    batcher.flush();
    expect(written).toEqual(['{"type":"goodbye"}']);
    batcher.flush();
    expect(written).toHaveLength(1);
  });
});
