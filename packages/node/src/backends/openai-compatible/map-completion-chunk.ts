import type { ChunkContent } from "./map-chunk.js";
import { mapOpenAIFinishReason } from "./map-finish-reason.js";

/**
 * One `text_completion` object from `POST /v1/completions` (a stream chunk or the whole answer) → what Tessera keeps.
 * The text is `choices[0].text` (chat has `delta.content`). Log-probabilities come in one of two shapes:
 * - OpenAI's legacy one, which vLLM and SGLang send: `logprobs: {tokens, token_logprobs, top_logprobs, text_offset}`;
 * - llama-server's: `logprobs: {content: [{id, token, logprob, …}]}`, with token ids (passed on as `tokens`).
 */
interface LogprobEntry {
  logprob?: unknown;
  id?: unknown;
}

interface WireCompletionChoice {
  text?: unknown;
  logprobs?: { content?: LogprobEntry[] | null; token_logprobs?: unknown[] | null } | null;
  finish_reason?: string | null;
}

interface WireCompletion {
  choices?: WireCompletionChoice[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

export function mapCompletionChunk(raw: unknown): ChunkContent {
  const chunk = (raw ?? {}) as WireCompletion;
  const choice = chunk.choices?.[0];
  let logprobs: number[] | undefined;
  let tokens: number[] | undefined;
  const entries = choice?.logprobs?.content;
  const legacy = choice?.logprobs?.token_logprobs;
  if (Array.isArray(entries) && entries.length > 0) {
    logprobs = entries.map((e) => (typeof e.logprob === "number" ? e.logprob : Number.NaN));
    if (entries.every((e) => typeof e.id === "number" && Number.isInteger(e.id) && e.id >= 0)) tokens = entries.map((e) => e.id as number);
  } else if (Array.isArray(legacy) && legacy.length > 0) {
    logprobs = legacy.map((l) => (typeof l === "number" ? l : Number.NaN));
  }
  if (logprobs?.some(Number.isNaN)) logprobs = undefined;
  const u = chunk.usage;
  const usage =
    u && typeof u.prompt_tokens === "number" && typeof u.completion_tokens === "number"
      ? { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
      : undefined;
  return {
    text: typeof choice?.text === "string" ? choice.text : "",
    logprobs,
    tokens,
    finish: mapOpenAIFinishReason(choice?.finish_reason),
    usage,
    toolCalls: undefined,
  };
}
