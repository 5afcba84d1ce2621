import { type FinishReason, LOGPROB_FLOOR, MAX_TOP_LOGPROBS, type TokenAlternative, type TokenLogprob } from "@tessera/protocol";
import type { ToolCallPiece } from "../http/assemble-stream.js";
import { mapOpenAIFinishReason } from "./map-finish-reason.js";

/** What one `chat.completion.chunk` (or a non-stream `chat.completion` choice) carries that Tessera keeps. */
export interface ChunkContent {
  text: string;
  logprobs: number[] | undefined;
  /** Token ids, where the server reports them (llama-server puts `id` in each logprobs entry). */
  tokens: number[] | undefined;
  /** Each token's text, log-probability and alternatives, where the server sent them (for a client that asked). */
  tokenLogprobs?: TokenLogprob[] | undefined;
  finish: FinishReason | undefined;
  usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  /** Pieces of tool calls: a stream's deltas (by index), or a whole message's calls. */
  toolCalls: ToolCallPiece[] | undefined;
}

interface WireToolCall {
  index?: unknown;
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown };
}

export interface LogprobEntry {
  logprob?: unknown;
  id?: unknown;
  token?: unknown;
  top_logprobs?: Array<{ token?: unknown; logprob?: unknown }> | null;
}

interface WireChoice {
  delta?: { content?: unknown; tool_calls?: WireToolCall[] | null };
  message?: { content?: unknown; tool_calls?: WireToolCall[] | null };
  logprobs?: { content?: LogprobEntry[] | null } | null;
  finish_reason?: string | null;
}

interface WireChunk {
  choices?: WireChoice[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

export function mapChunk(raw: unknown): ChunkContent {
  const chunk = (raw ?? {}) as WireChunk;
  const choice = chunk.choices?.[0];
  const content = choice?.delta?.content ?? choice?.message?.content;
  const entries = choice?.logprobs?.content ?? undefined;
  let logprobs: number[] | undefined;
  let tokens: number[] | undefined;
  if (Array.isArray(entries) && entries.length > 0) {
    logprobs = entries.map((e) => (typeof e.logprob === "number" ? e.logprob : Number.NaN));
    if (logprobs.some(Number.isNaN)) logprobs = undefined;
    if (entries.every((e) => typeof e.id === "number" && Number.isInteger(e.id) && e.id >= 0)) {
      tokens = entries.map((e) => e.id as number);
    }
  }
  const u = chunk.usage;
  const usage =
    u && typeof u.prompt_tokens === "number" && typeof u.completion_tokens === "number"
      ? { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
      : undefined;
  const wireCalls = choice?.delta?.tool_calls ?? choice?.message?.tool_calls;
  const toolCalls = Array.isArray(wireCalls) && wireCalls.length > 0 ? wireCalls.map(toPiece) : undefined;
  return {
    toolCalls,
    text: typeof content === "string" ? content : "",
    logprobs,
    tokens,
    tokenLogprobs: Array.isArray(entries) && entries.length > 0 ? tokenLogprobsOf(entries) : undefined,
    finish: mapOpenAIFinishReason(choice?.finish_reason),
    usage,
  };
}

function toPiece(call: WireToolCall, position: number): ToolCallPiece {
  const piece: ToolCallPiece = { index: typeof call.index === "number" ? call.index : position };
  if (typeof call.id === "string" && call.id) piece.id = call.id;
  if (typeof call.function?.name === "string" && call.function.name) piece.name = call.function.name;
  // Ollama-style servers send arguments as an object rather than a JSON string.
  const args = call.function?.arguments;
  if (typeof args === "string") piece.arguments = args;
  else if (args !== undefined && args !== null) piece.arguments = JSON.stringify(args);
  return piece;
}

/** A server's number as a log-probability Tessera relays: finite, at most 0, floored where it means "impossible". */
export function asLogprob(value: unknown): number | undefined {
  if (typeof value !== "number" || Number.isNaN(value)) return undefined;
  return Math.max(LOGPROB_FLOOR, Math.min(0, value));
}

function alternativeOf(entry: { token?: unknown; logprob?: unknown }): TokenAlternative | undefined {
  const logprob = asLogprob(entry.logprob);
  return typeof entry.token === "string" && logprob !== undefined ? { token: entry.token, logprob } : undefined;
}

/** OpenAI's `logprobs.content` entries (chat; llama-server's completions too) as Tessera's token log-probabilities; undefined unless every entry is whole. */
export function tokenLogprobsOf(entries: LogprobEntry[]): TokenLogprob[] | undefined {
  const out: TokenLogprob[] = [];
  for (const entry of entries) {
    const own = alternativeOf(entry);
    if (!own) return undefined;
    const top = (Array.isArray(entry.top_logprobs) ? entry.top_logprobs : []).slice(0, MAX_TOP_LOGPROBS).map(alternativeOf);
    if (top.some((t) => t === undefined)) return undefined;
    out.push({ ...own, top_logprobs: top as TokenAlternative[] });
  }
  return out;
}
