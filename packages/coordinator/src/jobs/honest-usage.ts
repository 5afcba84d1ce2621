import type { ChatMessage, Sampling } from "@tessera/protocol";

/**
 * What a node's turn at a job is credited with. Nodes are untrusted and their usage report is a claim: the coordinator
 * counts what it relayed and accepts a claim only where it cannot count and only within what the relayed text allows.
 * Pure; job-manager feeds it the attempt's figures. A correction is reported so the node can be flagged.
 */

/** Tokens a chat template may add per message (role markers, separators) and once per prompt (BOS, the reply's header). */
export const TEMPLATE_TOKENS_PER_MESSAGE = 16;
export const TEMPLATE_TOKENS_PER_PROMPT = 32;
/** What a backend may add to show tools to the model (its instruction around the definitions, counted separately). */
export const TOOL_PROMPT_TOKENS = 512;

export interface RelayedCompletion {
  /** Tokens the coordinator relayed: token ids where the node sent them, else one per text delta. */
  relayed: number;
  /** Every text delta carried its token ids, so `relayed` is an exact count. */
  exact: boolean;
  /** UTF-8 bytes of the text relayed: no tokenizer spends fewer than one byte a token, but for one final special token. */
  bytes: number;
  /** The attempt's token budget (`max_tokens`, less what earlier nodes produced). */
  budget: number;
  /** The node's own figure, when it sent a usage part. */
  claimed: number | undefined;
}

export interface Credited {
  tokens: number;
  /** Set when the node's claim (or its relayed stream) had to be cut down or replaced: why. */
  correction?: "claim_ignored" | "claim_clamped" | "over_budget";
}

/**
 * With exact ids the relayed count is the answer (a claim that differs is ignored); without them the claim is
 * accepted between one token per delta and one per byte (plus one), and nothing is ever credited past the budget.
 */
export function creditCompletion(c: RelayedCompletion): Credited {
  let tokens: number;
  let correction: Credited["correction"];
  if (c.exact || c.claimed === undefined) {
    tokens = c.relayed;
    if (c.claimed !== undefined && c.claimed !== c.relayed) correction = "claim_ignored";
  } else {
    const upper = Math.max(c.relayed, c.bytes + 1);
    tokens = Math.min(Math.max(c.claimed, c.relayed), upper);
    if (tokens !== c.claimed) correction = "claim_clamped";
  }
  if (tokens > c.budget) {
    tokens = Math.max(0, c.budget);
    correction ??= "over_budget";
  }
  return correction ? { tokens, correction } : { tokens };
}

/**
 * The most prompt tokens a prompt can honestly have: one per UTF-8 byte of its text (roles, earlier tool calls and
 * the assistant prefix a continuing node is given included), plus what a chat template adds; with tools, their
 * definitions and the backend's instruction around them; with a JSON schema, the schema (some backends show it to the
 * model).
 */
export function promptTokenBound(messages: readonly ChatMessage[], assistantPrefix: string, sampling?: Pick<Sampling, "tools" | "response_format">): number {
  const utf8 = (text: string) => Buffer.byteLength(text, "utf8");
  let bytes = utf8(assistantPrefix);
  for (const m of messages) {
    bytes += utf8(m.content) + utf8(m.role);
    if (m.tool_calls) bytes += utf8(JSON.stringify(m.tool_calls));
    if (m.tool_call_id) bytes += utf8(m.tool_call_id);
  }
  let extra = 0;
  if (sampling?.tools?.length) extra += utf8(JSON.stringify(sampling.tools)) + TOOL_PROMPT_TOKENS;
  if (sampling?.response_format) extra += utf8(JSON.stringify(sampling.response_format));
  return bytes + extra + TEMPLATE_TOKENS_PER_MESSAGE * (messages.length + 1) + TEMPLATE_TOKENS_PER_PROMPT;
}

/** A node's prompt-token claim if it is within the bound, else the coordinator's estimate, flagged. */
export function creditPrompt(claimed: number, bound: number, estimate: number): Credited {
  return claimed <= bound ? { tokens: claimed } : { tokens: Math.min(estimate, bound), correction: "claim_clamped" };
}
