import { describe, expect, it } from "vitest";
import type { ToolDefinition } from "@tessera/protocol";
import { parsePartialToolCalls, parseToolCalls, toolPromptMessages } from "./tool-prompt.js";

const WEATHER: ToolDefinition = { type: "function", function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };

describe("the embedded engine's tool prompt", () => {
  it("adds the tools and the call syntax to the system message, and writes a call history back in that syntax", () => {
    const out = toolPromptMessages(
      [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Weather?" },
        { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
        { role: "tool", content: "4C", tool_call_id: "c1" },
      ],
      [WEATHER],
      true,
    );
    expect(out[0]!.role).toBe("system");
    expect(out[0]!.content).toMatch(/^Be brief\.\n\nYou must call one of these functions\./);
    expect(out[0]!.content).toContain('"name":"get_weather"');
    expect(out.slice(2)).toEqual([
      { role: "assistant", content: '<tool_call>[{"name":"get_weather","arguments":{"city":"Oslo"}}]' },
      { role: "user", content: "<tool_response>\n4C\n</tool_response>" },
    ]);
  });

  it("without callable tools it only rewrites the history (no instruction)", () => {
    expect(toolPromptMessages([{ role: "user", content: "hi" }], [], false)).toEqual([{ role: "user", content: "hi" }]);
  });

  it("parses a whole call answer with fresh ids; anything else is not a call", () => {
    let n = 0;
    const id = () => `call_${++n}`;
    expect(parseToolCalls('<tool_call>[{"name":"f","arguments":{"a":1}},{"name":"g"}]', id)).toEqual([
      { id: "call_1", type: "function", function: { name: "f", arguments: '{"a":1}' } },
      { id: "call_2", type: "function", function: { name: "g", arguments: "{}" } },
    ]);
    expect(parseToolCalls('<tool_call>[{"name":"f","argu', id)).toBeUndefined();
    expect(parseToolCalls("hello", id)).toBeUndefined();
    expect(parseToolCalls("<tool_call>[]", id)).toBeUndefined();
  });

  it("parses calls cut short: the whole ones, then the last as far as its arguments got; nothing before a whole name", () => {
    let n = 0;
    const id = () => `call_${++n}`;
    const cut = '<tool_call>[{"name":"f","arguments":{"a":"x}]"}},\n {"name": "g", "arguments": {"city": "Os';
    expect(parsePartialToolCalls(cut, id)).toEqual([
      { id: "call_1", type: "function", function: { name: "f", arguments: '{"a":"x}]"}' } },
      { id: "call_2", type: "function", function: { name: "g", arguments: '{"city": "Os' } },
    ]);
    expect(parsePartialToolCalls('<tool_call>[{"name":"f"', id)).toEqual([{ id: "call_3", type: "function", function: { name: "f", arguments: "" } }]);
    expect(parsePartialToolCalls('<tool_call>[{"name":"f","arguments":{}}]', id)).toEqual([{ id: "call_4", type: "function", function: { name: "f", arguments: "{}" } }]);
    expect(parsePartialToolCalls('<tool_call>[{"name":"ge', id)).toBeUndefined();
    expect(parsePartialToolCalls("<tool_call>", id)).toBeUndefined();
    expect(parsePartialToolCalls("hello", id)).toBeUndefined();
  });
});
