import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Sampling, type ToolDefinition, callableTools, responseFormatSchema } from "@tessera/protocol";
import type { GbnfJsonSchema } from "node-llama-cpp";
import { toGbnfJsonSchema } from "./to-gbnf-json-schema.js";

/**
 * What an answer is constrained to, as ONE llama.cpp grammar text (GBNF), the same on every backend that runs
 * canonical prompts (embedded compiles it with node-llama-cpp, llama-server takes it as `grammar`), so that a
 * constrained answer is the same tokens on both and a failover between them is exact (see design.md beside this file):
 * - `response_format` → the JSON Schema's grammar (`json_object`: any object);
 * - callable tools → `<tool_call>` then a JSON list of `{"name", "arguments"}` calls, each call's arguments under its
 *   function's parameter schema; with `tool_choice: auto` the answer may instead be plain text that does not start
 *   with `<` (so a call can only be the whole answer, and the text/call decision is the first character).
 * The call format is the one the tool prompt (tool-prompt.ts) teaches the model, and Hermes/Qwen-style models write
 * natively. The top rule is `root` (GRAMMAR_ROOT).
 */
export const TOOL_CALL_MARKER = "<tool_call>";
/** The most calls one answer may make when parallel calls are allowed (bounds the grammar). */
export const MAX_PARALLEL_CALLS = 8;

export type OutputKind = "free" | "json" | "tools";

/** The rule every grammar here starts at: llama.cpp's server always starts a `grammar` at `root`. */
export const GRAMMAR_ROOT = "root";

export type OutputGrammar =
  | { kind: "free" }
  | { kind: "json"; text: string; root: typeof GRAMMAR_ROOT }
  | { kind: "tools"; text: string; root: typeof GRAMMAR_ROOT; tools: ToolDefinition[]; required: boolean };

export type OutputGrammarResult = { ok: true; grammar: OutputGrammar } | { ok: false; message: string };

/** The JSON Schema of the call list the tool grammar allows. Pure; exported for tests. */
export function toolCallsSchema(tools: readonly ToolDefinition[], parallel: boolean): { ok: true; schema: GbnfJsonSchema } | { ok: false; message: string } {
  const calls: GbnfJsonSchema[] = [];
  for (const [i, tool] of tools.entries()) {
    const params = tool.function.parameters ?? { type: "object", properties: {} };
    const converted = toGbnfJsonSchema(params, { strict: tool.function.strict === true });
    if (!converted.ok) {
      return { ok: false, message: `tools.${i}.function.parameters: ${converted.keyword} (at ${converted.path || "the root"}) cannot be enforced with strict: true` };
    }
    calls.push({ type: "object", properties: { name: { const: tool.function.name }, arguments: converted.schema } });
  }
  const item: GbnfJsonSchema = calls.length === 1 ? calls[0]! : { oneOf: calls };
  return { ok: true, schema: { type: "array", items: item, minItems: 1, maxItems: parallel ? MAX_PARALLEL_CALLS : 1 } };
}

type GbnfGenerator = (schema: Readonly<GbnfJsonSchema>) => string;
let generator: Promise<GbnfGenerator> | undefined;

/**
 * node-llama-cpp 3.22's JSON Schema → GBNF generator, a pure function its `createGrammarForJsonSchema` calls before
 * compiling natively. It is not exported, so it is loaded from its file: a node that runs llama-server then needs no
 * native llama.cpp to write the very grammar the embedded engine compiles.
 */
function gbnfGenerator(): Promise<GbnfGenerator> {
  generator ??= (async () => {
    const main = createRequire(import.meta.url).resolve("node-llama-cpp");
    const file = join(dirname(main), "utils", "gbnfJson", "getGbnfGrammarForGbnfJsonSchema.js");
    const module = (await import(pathToFileURL(file).href)) as { getGbnfGrammarForGbnfJsonSchema?: GbnfGenerator };
    if (typeof module.getGbnfGrammarForGbnfJsonSchema !== "function") throw new Error(`node-llama-cpp's GBNF generator is not at ${file}`);
    return module.getGbnfGrammarForGbnfJsonSchema;
  })();
  return generator;
}

/**
 * The GBNF text of a JSON-schema grammar (root rule `root`), corrected where node-llama-cpp 3.22 allows more than JSON
 * Schema does: its `integer` takes an exponent (`1e-5` is not an integer), so the rule is replaced by plain integers
 * (≤ 16 digits, as its own mantissa).
 */
async function jsonSchemaGrammarText(schema: GbnfJsonSchema): Promise<string> {
  const text = (await gbnfGenerator())(schema);
  return text.replace(/^integer-number-rule ::= .*$/m, 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})');
}

/**
 * The tool grammar's name for the call list: the JSON generator's own root rule, renamed so that `root` is the top
 * rule. Only its definition is renamed: the generator names a rule `root` in other rules only when the schema refers
 * back to its own root, which a list of calls never does.
 */
const CALL_LIST_RULE = "tool-calls";

/**
 * What the `tool_choice: auto` grammar still allows once an answer has begun with text (its `[^<] .*` branch, past the
 * first character): any text, under the grammar sampler's own rules (no empty-text token, valid UTF-8). A backend that
 * cannot advance a grammar over another node's prefix (llama-server) continues such an answer under this grammar,
 * in the very state the whole grammar would be in. Relayed prefixes end on a whole character, so none is pending.
 */
export const TEXT_BRANCH_REST_GRAMMAR = `${GRAMMAR_ROOT} ::= .*\n`;

/** The one grammar for `sampling`'s `response_format` / tools; a refusal names what cannot be enforced. */
export async function outputGrammar(sampling: Pick<Sampling, "tools" | "tool_choice" | "parallel_tool_calls" | "response_format">): Promise<OutputGrammarResult> {
  const { tools, required } = callableTools(sampling.tools, sampling.tool_choice);
  const format = sampling.response_format;
  if (tools.length > 0) {
    if (format && !required) {
      // Two grammars (text-or-call and JSON) would have to be merged rule by rule; refused rather than half-honoured.
      return { ok: false, message: "response_format together with tools that may be called (tool_choice auto) is not supported; use one or the other, or tool_choice required" };
    }
    const schema = toolCallsSchema(tools, sampling.parallel_tool_calls !== false);
    if (!schema.ok) return schema;
    const calls = (await jsonSchemaGrammarText(schema.schema)).replace(new RegExp(`^${GRAMMAR_ROOT} ::=`), `${CALL_LIST_RULE} ::=`);
    const choice = required ? `"${TOOL_CALL_MARKER}" ${CALL_LIST_RULE}` : `"${TOOL_CALL_MARKER}" ${CALL_LIST_RULE} | [^<] .*`;
    return { ok: true, grammar: { kind: "tools", text: `${GRAMMAR_ROOT} ::= ${choice}\n${calls}\n`, root: GRAMMAR_ROOT, tools, required } };
  }
  if (!format) return { ok: true, grammar: { kind: "free" } };
  const strict = format.type === "json_schema" && format.json_schema.strict === true;
  const converted = toGbnfJsonSchema(responseFormatSchema(format), { strict });
  if (!converted.ok) {
    return { ok: false, message: `response_format.json_schema.schema: ${converted.keyword} (at ${converted.path || "the root"}) cannot be enforced with strict: true` };
  }
  return { ok: true, grammar: { kind: "json", text: await jsonSchemaGrammarText(converted.schema), root: GRAMMAR_ROOT } };
}
