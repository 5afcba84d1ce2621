import { type Sampling, type ToolDefinition, callableTools } from "@tessera/protocol";
import { type LlamaGrammar, LlamaGrammarEvaluationState, type LlamaModel, type Llama, type Token } from "node-llama-cpp";
import { outputGrammar } from "../../constrained/output-grammar.js";

/**
 * The embedded engine's side of constrained answers: the one grammar text every canonical backend uses
 * (constrained/output-grammar.ts), compiled by node-llama-cpp, and a grammar state for each answer.
 */
export type OutputPlan =
  | { kind: "free" }
  | { kind: "json"; grammar: LlamaGrammar }
  | { kind: "tools"; grammar: LlamaGrammar; tools: ToolDefinition[]; required: boolean };

export type OutputPlanResult = { ok: true; plan: OutputPlan } | { ok: false; message: string };

/** What a plan depends on: a job's sampling, or a spot check's `constraint` (the same four fields). */
export type OutputConstraint = Pick<Sampling, "tools" | "tool_choice" | "parallel_tool_calls" | "response_format">;

export async function planOutput(llama: Llama, sampling: OutputConstraint): Promise<OutputPlanResult> {
  const planned = await outputGrammar(sampling);
  if (!planned.ok) return planned;
  const g = planned.grammar;
  if (g.kind === "free") return { ok: true, plan: { kind: "free" } };
  const grammar = await llama.createGrammar({ grammar: g.text, rootRuleName: g.root });
  return { ok: true, plan: g.kind === "json" ? { kind: "json", grammar } : { kind: "tools", grammar, tools: g.tools, required: g.required } };
}

/** node-llama-cpp 3.22 keeps these on `llama._bindings` without a public API; see `grammarWalk`. */
interface GrammarBindings {
  AddonSampler?: {
    acceptGrammarEvaluationStateToken?: (state: unknown, token: number) => void;
    canBeNextTokenForGrammarEvaluationState?: (state: unknown, token: number) => boolean;
  };
}

/** A grammar state fed token by token: whether a token may come next, and feeding it one that may. */
export interface GrammarWalk {
  readonly state: LlamaGrammarEvaluationState;
  /** Whether `token` may come next (an end-of-generation token: whether the grammar may end here). */
  allows(token: number): boolean;
  /** Advances over `token`, which must be allowed. */
  accept(token: number): void;
}

/**
 * A fresh grammar state with a way to ask and advance it token by token. node-llama-cpp 3.22 offers no public way to
 * feed tokens to a grammar state (LlamaChat does it internally); this uses the same internal bindings. Undefined when
 * they are missing (another node-llama-cpp version).
 */
export function grammarWalk(model: LlamaModel, grammar: LlamaGrammar): GrammarWalk | undefined {
  const state = new LlamaGrammarEvaluationState({ model, grammar });
  const sampler = (grammar as unknown as { _llama?: { _bindings?: GrammarBindings } })._llama?._bindings?.AddonSampler;
  const native = (state as unknown as { _state?: unknown })._state;
  const accept = sampler?.acceptGrammarEvaluationStateToken;
  const allows = sampler?.canBeNextTokenForGrammarEvaluationState;
  if (!accept || !allows || native === undefined) return undefined;
  return { state, allows: (token) => allows(native, token), accept: (token) => accept(native, token) };
}

/**
 * A fresh grammar state for one answer, advanced over `prefix` (the tokens another node already produced, on
 * failover), so the continuation stays inside the grammar; each token is checked to be allowed first. Returns
 * undefined when a prefix token is not allowed or the bindings are missing.
 */
export function grammarState(model: LlamaModel, grammar: LlamaGrammar, prefix: readonly Token[]): LlamaGrammarEvaluationState | undefined {
  if (prefix.length === 0) return new LlamaGrammarEvaluationState({ model, grammar });
  const walk = grammarWalk(model, grammar);
  if (!walk) return undefined;
  for (const token of prefix) {
    if (!walk.allows(token)) return undefined;
    walk.accept(token);
  }
  return walk.state;
}

/**
 * `planOutput` with the last `size` plans kept: a client sends the same schema or tools with every request, and a
 * compiled grammar is immutable (each answer gets its own evaluation state), so it is compiled once. Refusals are
 * cached too; a compile that throws is not.
 */
export function cachedPlanner(llama: Llama, size = 16): (sampling: OutputConstraint) => Promise<OutputPlanResult> {
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
