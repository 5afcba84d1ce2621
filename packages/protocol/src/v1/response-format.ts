import { z } from "zod";
import { checkJsonSchema } from "./json-schema-bounds.js";

/**
 * OpenAI's `response_format`, as the chat route takes it and a job carries it to a node. `text` asks for nothing and
 * is dropped at the edge, so a job carries only the two that constrain the answer:
 * - `json_object`: the answer is one JSON object;
 * - `json_schema`: the answer is JSON valid against `schema`; with `strict`, a backend that cannot enforce every
 *   keyword of the schema refuses the job instead of answering loosely.
 */

/** A client's JSON Schema: an object, well-formed and within the bounds of json-schema-bounds.ts. */
export const JsonSchemaObject = z.record(z.string(), z.unknown()).superRefine((schema, ctx) => {
  const problem = checkJsonSchema(schema);
  if (problem) ctx.addIssue({ code: "custom", message: problem.message, path: problem.path ? problem.path.split(".") : [] });
});
export type JsonSchemaObject = Record<string, unknown>;

/** Names OpenAI accepts for a schema or a function: letters, digits, `_` and `-`, at most 64. */
export const FunctionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "must be 1 to 64 letters, digits, underscores or dashes");

export const JsonObjectFormat = z.object({ type: z.literal("json_object") });
export const JsonSchemaFormat = z.object({
  type: z.literal("json_schema"),
  json_schema: z.object({
    name: FunctionName,
    description: z.string().max(8192).optional(),
    schema: JsonSchemaObject.optional(),
    strict: z.boolean().nullish(),
  }),
});

/** What a job carries: only the formats that constrain the answer. */
export const ResponseFormat = z.discriminatedUnion("type", [JsonObjectFormat, JsonSchemaFormat]);
export type ResponseFormat = z.infer<typeof ResponseFormat>;

/** What the chat route accepts (`text` too, meaning no constraint). */
export const ResponseFormatParam = z.discriminatedUnion("type", [z.object({ type: z.literal("text") }), JsonObjectFormat, JsonSchemaFormat]);
export type ResponseFormatParam = z.infer<typeof ResponseFormatParam>;

export function normalizeResponseFormat(format: ResponseFormatParam | null | undefined): ResponseFormat | undefined {
  return format == null || format.type === "text" ? undefined : format;
}

/** The schema a format asks for: `json_object` is any object; a `json_schema` without a schema is any JSON value. */
export function responseFormatSchema(format: ResponseFormat): JsonSchemaObject {
  if (format.type === "json_object") return { type: "object" };
  return format.json_schema.schema ?? {};
}
