import { describe, expect, it } from "vitest";
import { MAX_SCHEMA_DEPTH, MAX_SCHEMA_NODES, checkJsonSchema } from "./json-schema-bounds.js";
import { ChatCompletionRequest } from "./chat-completion.js";
import { MAX_TOOLS_SCHEMA_BYTES } from "./tools.js";

const nest = (levels: number) => {
  let s: Record<string, unknown> = { type: "string" };
  for (let i = 0; i < levels; i++) s = { type: "array", items: s };
  return s;
};

describe("the edge check on a client's JSON Schema", () => {
  it("accepts real schemas, booleans as sub-schemas, and nesting up to the bound", () => {
    expect(checkJsonSchema({ type: "object", properties: { a: { type: ["string", "null"] } }, additionalProperties: false, required: ["a"] })).toBeUndefined();
    expect(checkJsonSchema(nest(MAX_SCHEMA_DEPTH))).toBeUndefined();
  });

  it.each([
    [nest(MAX_SCHEMA_DEPTH + 1), "items.".repeat(MAX_SCHEMA_DEPTH + 1).slice(0, -1), /deeper than 10/],
    [{ type: "strng" }, "type", /type must be one of/],
    [{ properties: [] }, "properties", /object of schemas/],
    [{ anyOf: [] }, "anyOf", /non-empty list/],
    [{ required: "a" }, "required", /list of property names/],
    [{ maxLength: -1 }, "maxLength", /non-negative integer/],
    [{ properties: { a: 3 } }, "properties.a", /must be a JSON object/],
    [{ type: "object", properties: Object.fromEntries(Array.from({ length: MAX_SCHEMA_NODES }, (_, i) => [`p${i}`, {}])) }, /^properties\.p\d+$/, /more than 1000 sub-schemas/],
  ])("refuses %j at its path", (schema, path, message) => {
    const problem = checkJsonSchema(schema);
    if (path instanceof RegExp) expect(problem?.path).toMatch(path);
    else expect(problem?.path).toBe(path);
    expect(problem?.message).toMatch(message);
  });

  it("refuses a schema past 64 KiB", () => {
    expect(checkJsonSchema({ description: "x".repeat(70_000) })?.message).toMatch(/at most 65536/);
  });

  it("the chat request names the field at fault for each", () => {
    const parsed = ChatCompletionRequest.safeParse({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "n", schema: { type: "object", properties: { a: { type: "nope" } } } } },
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0]!.path.join(".")).toBe("response_format.json_schema.schema.properties.a.type");
  });

  it("bounds all tools' schemas together, naming tools", () => {
    const big = { type: "object", description: "x".repeat(60_000) };
    const tools = Array.from({ length: Math.ceil(MAX_TOOLS_SCHEMA_BYTES / 60_000) + 1 }, (_, i) => ({ type: "function", function: { name: `f${i}`, parameters: big } }));
    const parsed = ChatCompletionRequest.safeParse({ model: "m", messages: [{ role: "user", content: "x" }], tools });
    expect(parsed.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([["tools", expect.stringMatching(/at most 131072 are accepted/)]]);
  });
});
