import { LOGPROB_FLOOR, MAX_TOP_LOGPROBS, type TokenLogprob } from "@tessera/protocol";
import { type ChunkContent, type LogprobEntry, asLogprob, exactTokenIds, tokenLogprobsOf, wireTokenIds } from "./map-chunk.js";
import { mapOpenAIFinishReason } from "./map-finish-reason.js";

/**
 * One `text_completion` object from `POST /v1/completions` (a stream chunk or the whole answer) → what Tessera keeps.
 * The text is `choices[0].text` (chat has `delta.content`). Log-probabilities come in one of two shapes:
 * - OpenAI's legacy one, which vLLM and SGLang send: `logprobs: {tokens, token_logprobs, top_logprobs, text_offset}`;
 * - llama-server's: `logprobs: {content: [{id, token, logprob, …}]}`, with token ids (passed on as `tokens`).
 */
interface WireCompletionChoice {
  text?: unknown;
  logprobs?: { content?: LogprobEntry[] | null; tokens?: unknown[] | null; token_logprobs?: unknown[] | null; top_logprobs?: unknown[] | null } | null;
  finish_reason?: string | null;
  token_ids?: unknown;
  stop_reason?: unknown;
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
    tokens = exactTokenIds(entries, typeof choice?.text === "string" ? choice.text : "");
  } else if (Array.isArray(legacy) && legacy.length > 0) {
    logprobs = legacy.map((l) => (typeof l === "number" ? l : Number.NaN));
  }
  if (logprobs?.some(Number.isNaN)) logprobs = undefined;
  const tokenLogprobs = Array.isArray(entries) && entries.length > 0 ? tokenLogprobsOf(entries) : legacyTokenLogprobs(choice?.logprobs ?? undefined);
  const u = chunk.usage;
  const usage =
    u && typeof u.prompt_tokens === "number" && typeof u.completion_tokens === "number"
      ? { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
      : undefined;
  return {
    text: typeof choice?.text === "string" ? choice.text : "",
    logprobs,
    tokens,
    tokenIds: wireTokenIds(choice?.token_ids),
    stopReason: choice?.stop_reason,
    tokenLogprobs,
    finish: mapOpenAIFinishReason(choice?.finish_reason),
    usage,
    toolCalls: undefined,
  };
}

/**
 * The legacy shape's parallel lists (`tokens`, `token_logprobs`, `top_logprobs` as `{token: logprob}` objects) as
 * Tessera's token log-probabilities, alternatives best first; undefined unless they are whole and of one length.
 */
function legacyTokenLogprobs(logprobs: { tokens?: unknown[] | null; token_logprobs?: unknown[] | null; top_logprobs?: unknown[] | null } | undefined): TokenLogprob[] | undefined {
  const tokens = logprobs?.tokens;
  const values = logprobs?.token_logprobs;
  if (!Array.isArray(tokens) || !Array.isArray(values) || tokens.length === 0 || tokens.length !== values.length) return undefined;
  const tops = Array.isArray(logprobs?.top_logprobs) ? logprobs.top_logprobs : [];
  const out: TokenLogprob[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    const logprob = asLogprob(values[i]);
    if (typeof token !== "string" || logprob === undefined) return undefined;
    const top = tops[i];
    const alternatives = top && typeof top === "object" && !Array.isArray(top)
      ? Object.entries(top as Record<string, unknown>)
          .map(([t, v]) => ({ token: t, logprob: asLogprob(v) ?? LOGPROB_FLOOR }))
          .sort((a, b) => b.logprob - a.logprob)
          .slice(0, MAX_TOP_LOGPROBS)
      : [];
    out.push({ token, logprob, top_logprobs: alternatives });
  }
  return out;
}
