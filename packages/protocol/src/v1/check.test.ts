import { describe, expect, it } from "vitest";
import { CheckScore } from "./check.js";
import { CoordinatorMessage } from "./session.js";
import { MAX_TOOLS } from "./tools.js";

const base = { type: "check.score", check_id: "c1", model: "m", messages: [{ role: "user", content: "x" }], output_tokens: [1, 2] };
const weather = { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };

describe("check.score constraint", () => {
  it("carries a tool chat's and a JSON answer's grammar, on its own and in the coordinator's message union", () => {
    const tools = { tools: [weather], tool_choice: "required", parallel_tool_calls: false };
    expect(CheckScore.parse({ ...base, constraint: tools }).constraint).toEqual(tools);
    const json = { response_format: { type: "json_schema", json_schema: { name: "city", schema: { type: "object" }, strict: true } } };
    expect(CoordinatorMessage.parse({ ...base, constraint: json })).toMatchObject({ type: "check.score", constraint: json });
    expect(CheckScore.parse(base).constraint).toBeUndefined();
  });

  it("refuses a constraint that constrains nothing, and bad or unbounded values", () => {
    const bad: unknown[] = [
      {},
      { tool_choice: "required" },
      { tools: [weather], tool_choice: "sometimes" },
      { tools: [weather], parallel_tool_calls: "no" },
      { response_format: { type: "text" } },
      { tools: [weather, weather] },
      { tools: Array.from({ length: MAX_TOOLS + 1 }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) },
      { tools: [{ type: "function", function: { name: "has space" } }] },
    ];
    for (const constraint of bad) expect(CheckScore.safeParse({ ...base, constraint }).success, JSON.stringify(constraint).slice(0, 80)).toBe(false);
  });
});
