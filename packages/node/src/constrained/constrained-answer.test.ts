import { describe, expect, it } from "vitest";
import type { Token } from "node-llama-cpp";
import { ConstrainedAnswer } from "./constrained-answer.js";

const d = (text: string, ...tokens: number[]) => ({ text, tokens: tokens as Token[] });

describe("turning a constrained answer's deltas into parts", () => {
  it("JSON: streams, holds a trailing newline run, and ends at the grammar's four newlines with them dropped", () => {
    const a = new ConstrainedAnswer("json", false);
    expect(a.push(d("{", 1))).toEqual({ parts: [{ type: "text-delta", text: "{", tokens: [1] }], ended: false });
    expect(a.push(d("\n", 2))).toEqual({ parts: [], ended: false });
    expect(a.push(d('  "a": 1}', 3))).toEqual({ parts: [{ type: "text-delta", text: '\n  "a": 1}', tokens: [2, 3] }], ended: false });
    expect(a.push(d("\n\n", 4))).toEqual({ parts: [], ended: false });
    // The dropped newlines' tokens ride on the last part, so every generated token is relayed.
    expect(a.push(d("\n\n", 5))).toEqual({ parts: [{ type: "text-delta", text: "", tokens: [4, 5] }], ended: true });
    expect(a.finish(true)).toEqual([]);
  });

  it("tools: a call is held whole and becomes one tool-calls part; calls cut short are sent as far as they got, never as text", () => {
    const a = new ConstrainedAnswer("tools", false);
    expect(a.push(d("<tool_call>", 1)).parts).toEqual([]);
    expect(a.push(d('[{"name":"f","arguments":{}}]', 2)).parts).toEqual([]);
    expect(a.push(d("\n\n\n\n", 3))).toEqual({ parts: [], ended: true });
    const [part] = a.finish(true);
    expect(part).toMatchObject({ type: "tool-calls", calls: [{ type: "function", function: { name: "f", arguments: "{}" } }], tokens: [1, 2, 3] });

    const cut = new ConstrainedAnswer("tools", false);
    cut.push(d('<tool_call>[{"name":"f","arguments":{"a"', 1, 2));
    expect(cut.finish(false)).toMatchObject([{ type: "tool-calls", calls: [{ type: "function", function: { name: "f", arguments: '{"a"' } }], tokens: [1, 2] }]);
    // Cut before a whole name: no call to show, and no call syntax as text; the tokens still count.
    const early = new ConstrainedAnswer("tools", false);
    early.push(d('<tool_call>[{"na', 1));
    expect(early.finish(false)).toEqual([{ type: "text-delta", text: "", tokens: [1] }]);
  });

  it("a delta without ids (a backend that cannot say them exactly) makes the part it goes into carry none, never a wrong list", () => {
    const a = new ConstrainedAnswer("json", false);
    expect(a.push(d("{", 1)).parts).toEqual([{ type: "text-delta", text: "{", tokens: [1] }]);
    expect(a.push({ text: "\n" }).parts).toEqual([]);
    expect(a.push(d('"é": 1}', 3)).parts).toEqual([{ type: "text-delta", text: '\n"é": 1}' }]);
    expect(a.push(d("\n\n\n\n", 4))).toEqual({ parts: [{ type: "text-delta", text: "", tokens: [4] }], ended: true });
    const call = new ConstrainedAnswer("tools", false);
    call.push(d("<tool_call>", 1));
    call.push({ text: '[{"name":"f","arguments":{}}]' });
    call.push(d("\n\n\n\n", 3));
    const [part] = call.finish(true);
    expect(part).toMatchObject({ type: "tool-calls", calls: [{ function: { name: "f", arguments: "{}" } }] });
    expect(part).not.toHaveProperty("tokens");
  });

  it("tools (auto): text that does not start a call streams untouched, newlines and all", () => {
    const a = new ConstrainedAnswer("tools", false);
    expect(a.push(d("Hi\n\n\n\n", 1))).toEqual({ parts: [{ type: "text-delta", text: "Hi\n\n\n\n", tokens: [1] }], ended: false });
  });
});
