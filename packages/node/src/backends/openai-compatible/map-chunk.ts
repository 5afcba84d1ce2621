import { type FinishReason, LOGPROB_FLOOR, MAX_TOP_LOGPROBS, type TokenAlternative, type TokenLogprob } from "@tessera/protocol";
import type { ToolCallPiece } from "../http/assemble-stream.js";
import { mapOpenAIFinishReason } from "./map-finish-reason.js";

/** What one `chat.completion.chunk` (or a non-stream `chat.completion` choice) carries that Tessera keeps. */
export interface ChunkContent {
  text: string;
  logprobs: number[] | undefined;
  /** Token ids, where the server reports them (llama-server puts `id` in each logprobs entry). */
  tokens: number[] | undefined;
  /**
   * The chunk's token ids as the server lists them beside the text (vLLM's `return_token_ids`: `choices[].token_ids`),
   * the token it stopped on included; the adapter turns them into `tokens` (openai-compatible-adapter.ts).
   */
  tokenIds?: number[] | undefined;
  /** vLLM's `stop_reason`: null when the answer ended on EOS, the stop token's id, or the stop string matched. */
  stopReason?: unknown;
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
  /** The UTF-8 bytes of the text (OpenAI; llama-server's may be an incomplete sequence). */
  bytes?: unknown[] | null;
  top_logprobs?: Array<{ token?: unknown; logprob?: unknown; id?: unknown; bytes?: unknown[] | null }> | null;
}

interface WireChoice {
  delta?: { content?: unknown; tool_calls?: WireToolCall[] | null };
  message?: { content?: unknown; tool_calls?: WireToolCall[] | null };
  logprobs?: { content?: LogprobEntry[] | null } | null;
  finish_reason?: string | null;
  token_ids?: unknown;
  stop_reason?: unknown;
}

/** `choices[].token_ids` (vLLM's `return_token_ids`) when it is a list of token ids, else undefined. */
export function wireTokenIds(value: unknown): number[] | undefined {
  return Array.isArray(value) && value.every((t) => Number.isInteger(t) && (t as number) >= 0) ? (value as number[]) : undefined;
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
    tokens = exactTokenIds(entries, typeof content === "string" ? content : "");
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
    tokenIds: wireTokenIds(choice?.token_ids),
    stopReason: choice?.stop_reason,
    tokenLogprobs: Array.isArray(entries) && entries.length > 0 ? tokenLogprobsOf(entries) : undefined,
    finish: mapOpenAIFinishReason(choice?.finish_reason),
    usage,
  };
}

/**
 * The token ids of a chunk (llama-server's `id` in each logprobs entry), only when they are provably all of the
 * chunk's tokens. llama-server (v0.5.0 bundle, server-context.cpp `process_token`) sends nothing for a token whose
 * text ends mid-character (a byte-fallback piece, say) and later sends the held-back bytes in front of the next
 * token's text, in a chunk that carries only the next token's entry, whose `token`/`bytes` are that whole text: the
 * held-back token's id is lost (found on a real llama-server). Held-back bytes are never ASCII, so an entry whose
 * bytes start below 0x80 holds one token; otherwise its bytes must equal the piece of its own id among its
 * `top_logprobs` candidates (llama-server sends 20 for chat's `logprobs:true`, 1 for completions' `logprobs:1`; a
 * greedy choice is always among them). A chunk that fails relays no ids, so the coordinator knows they are inexact.
 */
export function exactTokenIds(entries: LogprobEntry[], text: string): number[] | undefined {
  if (!entries.every((e) => typeof e.id === "number" && Number.isInteger(e.id) && e.id >= 0)) return undefined;
  if (entries.map((e) => (typeof e.token === "string" ? e.token : "")).join("") !== text) return undefined;
  return entries.every(holdsOneToken) ? entries.map((e) => e.id as number) : undefined;
}

function holdsOneToken(entry: LogprobEntry): boolean {
  const bytes = Array.isArray(entry.bytes) ? entry.bytes : typeof entry.token === "string" ? [...Buffer.from(entry.token, "utf8")] : [];
  if (bytes.length === 0 || (typeof bytes[0] === "number" && bytes[0] < 0x80)) return true;
  const own = (entry.top_logprobs ?? []).find((c) => c.id === entry.id);
  return !!own && Array.isArray(own.bytes) && own.bytes.length === bytes.length && own.bytes.every((b, i) => b === bytes[i]);
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
