import { z } from "zod";
import { FunctionName, JsonSchemaObject } from "./response-format.js";

/**
 * Function tools, as OpenAI's chat API spells them: what a client offers (`tools`), how it lets the model use them
 * (`tool_choice`), and what the model calls (`tool_calls`, on an assistant message and in an answer). A job carries
 * the same shapes to the node.
 */
export const MAX_TOOLS = 128;
/** All tools' parameter schemas together, as JSON text: what a node compiles into one grammar stays bounded. */
export const MAX_TOOLS_SCHEMA_BYTES = 128 * 1024;

export const ToolDefinition = z.object({
  type: z.literal("function"),
  function: z.object({
    name: FunctionName,
    description: z.string().max(8192).optional(),
    parameters: JsonSchemaObject.optional(),
    strict: z.boolean().nullish(),
  }),
});
export type ToolDefinition = z.infer<typeof ToolDefinition>;

export const Tools = z
  .array(ToolDefinition)
  .max(MAX_TOOLS, `at most ${MAX_TOOLS} tools`)
  .superRefine((tools, ctx) => {
    const bytes = new TextEncoder().encode(JSON.stringify(tools.map((t) => t.function.parameters ?? {}))).length;
    if (bytes > MAX_TOOLS_SCHEMA_BYTES) {
      ctx.addIssue({ code: "custom", message: `the tools' parameter schemas are ${bytes} bytes together; at most ${MAX_TOOLS_SCHEMA_BYTES} are accepted`, path: [] });
    }
    const seen = new Set<string>();
    for (const [i, tool] of tools.entries()) {
      if (seen.has(tool.function.name)) {
        ctx.addIssue({ code: "custom", message: `two tools are named ${tool.function.name}`, path: [i, "function", "name"] });
      }
      seen.add(tool.function.name);
    }
  });

export const NamedToolChoice = z.object({ type: z.literal("function"), function: z.object({ name: FunctionName }) });
export const ToolChoice = z.union([z.enum(["none", "auto", "required"]), NamedToolChoice]);
export type ToolChoice = z.infer<typeof ToolChoice>;

export const ToolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  function: z.object({ name: FunctionName, arguments: z.string().max(256 * 1024) }),
});
export type ToolCall = z.infer<typeof ToolCall>;

/** The tool a `tool_choice` forces, if it names one. */
export function forcedToolName(choice: ToolChoice | undefined): string | undefined {
  return typeof choice === "object" ? choice.function.name : undefined;
}

/**
 * The tools the model may call under `choice` (OpenAI's default: `auto` when tools are given): none for `none`, the
 * named one for a named choice, else all; and whether it must call one.
 */
export function callableTools(tools: readonly ToolDefinition[] | undefined, choice: ToolChoice | undefined): { tools: ToolDefinition[]; required: boolean } {
  if (!tools || tools.length === 0 || choice === "none") return { tools: [], required: false };
  const forced = forcedToolName(choice);
  if (forced !== undefined) return { tools: tools.filter((t) => t.function.name === forced), required: true };
  return { tools: [...tools], required: choice === "required" };
}
