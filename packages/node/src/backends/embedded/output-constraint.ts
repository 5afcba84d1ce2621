import { type Sampling, type ToolDefinition, callableTools, responseFormatSchema } from "@tessera/protocol";
import { type Llama, type LlamaGrammar, LlamaGrammarEvaluationState, type LlamaModel, type Token } from "node-llama-cpp";
import { toGbnfJsonSchema } from "./to-gbnf-json-schema.js";
import type { GbnfJsonSchema } from "node-llama-cpp";

/**
 * What the embedded engine constrains an answer to, as one llama.cpp grammar:
 * - `response_format` → the JSON Schema's grammar (`json_object`: any object);
 * - callable tools → `<tool_call>` then a JSON list of `{"name", "arguments"}` calls, each call's arguments under its
 *   function's parameter schema; with `tool_choice: auto` the answer may instead be plain text that does not start
 *   with `<` (so a call can only be the whole answer, and the text/call decision is the first character).
 * The format is the one the tool prompt (tool-prompt.ts) teaches the model, and Hermes/Qwen-style models write natively.
 */
export const TOOL_CALL_MARKER = "<tool_call>";
/** The most calls one answer may make when parallel calls are allowed (bounds the grammar). */
export const MAX_PARALLEL_CALLS = 8;

export type OutputPlan =
  | { kind: "free" }
  | { kind: "json"; grammar: LlamaGrammar }
  | { kind: "tools"; grammar: LlamaGrammar; tools: ToolDefinition[]; required: boolean };

export type OutputPlanResult = { ok: true; plan: OutputPlan } | { ok: false; message: string };

/** The JSON Schema of the call list the tool grammar allows. Pure; exported for tests. */
export function toolCallsSchema(tools: readonly ToolDefinition[], parallel: boolean): { ok: true; schema: GbnfJsonSchema } | { ok: false; message: string } {
  const calls: GbnfJsonSchema[] = [];
  for (const [i, tool] of tools.entries()) {
    const params = tool.function.parameters ?? { type: "object", properties: {} };
    const converted = toGbnfJsonSchema(params, { strict: tool.function.strict === true });
    if (!converted.ok) {
      return { ok: false, message: `tools.${i}.function.parameters: ${converted.keyword} (at ${converted.path || "the root"}) cannot be enforced on the embedded engine with strict: true` };
    }
    calls.push({ type: "object", properties: { name: { const: tool.function.name }, arguments: converted.schema } });
  }
  const item: GbnfJsonSchema = calls.length === 1 ? calls[0]! : { oneOf: calls };
  return { ok: true, schema: { type: "array", items: item, minItems: 1, maxItems: parallel ? MAX_PARALLEL_CALLS : 1 } };
}

/**
 * The GBNF text of a JSON-schema grammar, corrected where node-llama-cpp 3.22 allows more than JSON Schema does: its
 * `integer` takes an exponent (`1e-5` is not an integer), so the rule is replaced by plain integers (≤ 16 digits, as
 * its own mantissa).
 */
async function jsonSchemaGrammarText(llama: Llama, schema: GbnfJsonSchema): Promise<{ text: string; root: string }> {
  const compiled = await llama.createGrammarForJsonSchema(schema as never);
  const text = compiled.grammar.replace(/^integer-number-rule ::= .*$/m, 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})');
  return { text, root: compiled.rootRuleName };
}

export async function planOutput(llama: Llama, sampling: Sampling): Promise<OutputPlanResult> {
  const { tools, required } = callableTools(sampling.tools, sampling.tool_choice);
  const format = sampling.response_format;
  if (tools.length > 0) {
    if (format && !required) {
      // Two grammars (text-or-call and JSON) would have to be merged rule by rule; refused rather than half-honoured.
      return { ok: false, message: "response_format together with tools that may be called (tool_choice auto) is not supported on the embedded engine; use one or the other, or tool_choice required" };
    }
    const schema = toolCallsSchema(tools, sampling.parallel_tool_calls !== false);
    if (!schema.ok) return schema;
    const calls = await jsonSchemaGrammarText(llama, schema.schema);
    const root = "tessera-root";
    const choice = required ? `"${TOOL_CALL_MARKER}" ${calls.root}` : `"${TOOL_CALL_MARKER}" ${calls.root} | [^<] .*`;
    const grammar = await llama.createGrammar({ grammar: `${calls.text}\n${root} ::= ${choice}\n`, rootRuleName: root });
    return { ok: true, plan: { kind: "tools", grammar, tools, required } };
  }
  if (!format) return { ok: true, plan: { kind: "free" } };
  const strict = format.type === "json_schema" && format.json_schema.strict === true;
  const converted = toGbnfJsonSchema(responseFormatSchema(format), { strict });
  if (!converted.ok) {
    return { ok: false, message: `response_format.json_schema.schema: ${converted.keyword} (at ${converted.path || "the root"}) cannot be enforced on the embedded engine with strict: true` };
  }
  const json = await jsonSchemaGrammarText(llama, converted.schema);
  return { ok: true, plan: { kind: "json", grammar: await llama.createGrammar({ grammar: json.text, rootRuleName: json.root }) } };
}

/** node-llama-cpp 3.22 keeps these on `llama._bindings` without a public API; see `advanceGrammar`. */
interface GrammarBindings {
  AddonSampler?: {
    acceptGrammarEvaluationStateToken?: (state: unknown, token: number) => void;
    canBeNextTokenForGrammarEvaluationState?: (state: unknown, token: number) => boolean;
  };
}

/**
 * A fresh grammar state for one answer, advanced over `prefix` (the tokens another node already produced, on
 * failover), so the continuation stays inside the grammar. node-llama-cpp 3.22 offers no public way to feed tokens to
 * a grammar state (LlamaChat does it internally); this uses the same internal binding, and checks each token is
 * allowed first. Returns undefined when a prefix token is not allowed or the binding is missing.
 */
export function grammarState(model: LlamaModel, grammar: LlamaGrammar, prefix: readonly Token[]): LlamaGrammarEvaluationState | undefined {
  const state = new LlamaGrammarEvaluationState({ model, grammar });
  if (prefix.length === 0) return state;
  const sampler = (grammar as unknown as { _llama?: { _bindings?: GrammarBindings } })._llama?._bindings?.AddonSampler;
  const native = (state as unknown as { _state?: unknown })._state;
  if (!sampler?.acceptGrammarEvaluationStateToken || !sampler.canBeNextTokenForGrammarEvaluationState || native === undefined) return undefined;
  for (const token of prefix) {
    if (!sampler.canBeNextTokenForGrammarEvaluationState(native, token)) return undefined;
    sampler.acceptGrammarEvaluationStateToken(native, token);
  }
  return state;
}

/**
 * `planOutput` with the last `size` plans kept: a client sends the same schema or tools with every request, and a
 * compiled grammar is immutable (each answer gets its own evaluation state), so it is compiled once. Refusals are
 * cached too; a compile that throws is not.
 */
export function cachedPlanner(llama: Llama, size = 16): (sampling: Sampling) => Promise<OutputPlanResult> {
  const cache = new Map<string, Promise<OutputPlanResult>>();
  return (sampling) => {
    const { tools, required } = callableTools(sampling.tools, sampling.tool_choice);
    if (tools.length === 0 && !sampling.response_format) return Promise.resolve({ ok: true, plan: { kind: "free" } });
    const key = JSON.stringify([sampling.response_format, tools, required, sampling.parallel_tool_calls]);
    const hit = cache.get(key);
    if (hit) {
      cache.delete(key); // re-inserted below: Map order is recency
      cache.set(key, hit);
      return hit;
    }
    const planned = planOutput(llama, sampling);
    cache.set(key, planned);
    planned.catch(() => cache.delete(key));
    if (cache.size > size) cache.delete(cache.keys().next().value!);
    return planned;
  };
}
