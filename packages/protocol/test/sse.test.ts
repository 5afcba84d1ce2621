import { describe, expect, it } from "vitest";
import { SSE_DONE, SSE_KEEP_ALIVE, SseDecoder, nativeErrorEvent, nativeTextEvent, sseData } from "../src/index.js";

describe("SSE codec", () => {
  it("encodes the native format", () => {
    expect(nativeTextEvent('he said "hi"\n')).toBe('data: {"text":"he said \\"hi\\"\\n"}\n\n');
    expect(nativeErrorEvent("node_disconnected", "gone")).toBe('data: {"error":"node_disconnected","message":"gone"}\n\n');
    expect(SSE_DONE).toBe("data: [DONE]\n\n");
  });

  it("decodes events split across arbitrary chunk boundaries, skipping comments", () => {
    const stream = SSE_KEEP_ALIVE + sseData({ a: 1 }) + "event: x\r\ndata: line1\r\ndata: line2\r\n\r\n" + SSE_DONE;
    for (const size of [1, 3, 7, stream.length]) {
      const decoder = new SseDecoder();
      const events = [];
      for (let i = 0; i < stream.length; i += size) events.push(...decoder.push(stream.slice(i, i + size)));
      expect(events).toEqual([{ data: '{"a":1}' }, { event: "x", data: "line1\nline2" }, { data: "[DONE]" }]);
    }
  });
});
