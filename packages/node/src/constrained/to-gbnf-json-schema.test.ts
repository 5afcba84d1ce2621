import { describe, expect, it } from "vitest";
import { toGbnfJsonSchema } from "./to-gbnf-json-schema.js";

describe("a client's JSON Schema as node-llama-cpp's grammar subset", () => {
  it("keeps what the grammar enforces and drops annotations and what it enforces by construction (required)", () => {
    const schema = {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      title: "T",
      type: "object",
      properties: { a: { type: "string", maxLength: 4, description: "a" }, b: { type: "array", items: { type: "integer" }, maxItems: 2 } },
      required: ["a"],
      additionalProperties: false,
    };
    expect(toGbnfJsonSchema(schema, { strict: true })).toEqual({
      ok: true,
      schema: { type: "object", properties: { a: { type: "string", maxLength: 4, description: "a" }, b: { type: "array", items: { type: "integer" }, maxItems: 2 } } },
    });
  });

  it("rewrites what it can say another way: anyOf, nullable types, definitions, a one-element allOf", () => {
    const schema = {
      type: "object",
      properties: { p: { anyOf: [{ type: "string" }, { type: "null" }] }, q: { type: ["object", "null"], properties: { r: { $ref: "#/definitions/R" } } } },
      definitions: { R: { allOf: [{ type: "boolean" }] } },
    };
    expect(toGbnfJsonSchema(schema, { strict: true })).toEqual({
      ok: true,
      schema: {
        type: "object",
        properties: {
          p: { oneOf: [{ type: "string" }, { type: "null" }] },
          q: { oneOf: [{ type: "object", properties: { r: { $ref: "#/$defs/R" } } }, { type: "null" }] },
        },
        $defs: { R: { type: "boolean" } },
      },
    });
  });

  it("an enum keeps only the literals of its declared type", () => {
    expect(toGbnfJsonSchema({ type: "string", enum: ["a", 1, null, { b: 1 }] }, { strict: true })).toEqual({ ok: true, schema: { enum: ["a"] } });
    expect(toGbnfJsonSchema({ type: "number", enum: [1, 2.5, "x"] }, { strict: true })).toEqual({ ok: true, schema: { enum: [1, 2.5] } });
    expect(toGbnfJsonSchema({ enum: [[1]] }, { strict: true })).toMatchObject({ ok: false, path: "enum" });
  });

  it("an empty schema, true, and a bare object mean any value / any object", () => {
    const any = toGbnfJsonSchema({}, { strict: true });
    expect(any.ok && "oneOf" in any.schema).toBe(true);
    expect(toGbnfJsonSchema({ type: "object" }, { strict: true })).toEqual({ ok: true, schema: { type: "object", additionalProperties: true } });
  });

  it.each([
    [{ type: "integer", minimum: 0 }, "minimum", "minimum"],
    [{ type: "object", properties: { s: { type: "string", pattern: "^a" } } }, "properties.s.pattern", "pattern"],
    [{ type: "string", format: "email" }, "format", "format email"],
    [{ type: "array", uniqueItems: true }, "uniqueItems", "uniqueItems"],
    [{ allOf: [{ type: "string" }, { maxLength: 3 }] }, "allOf", "allOf with several schemas"],
    [{ $ref: "#" }, "$ref", "$ref #"],
  ])("strict: %j is refused at %s", (schema, path, keyword) => {
    expect(toGbnfJsonSchema(schema, { strict: true })).toEqual({ ok: false, path, keyword });
  });

  it("not strict (OpenAI's best effort): the same keywords are left to the model, the rest still enforced", () => {
    expect(toGbnfJsonSchema({ type: "object", properties: { n: { type: "integer", minimum: 0 } } }, { strict: false })).toEqual({
      ok: true,
      schema: { type: "object", properties: { n: { type: "integer" } } },
    });
  });
});
