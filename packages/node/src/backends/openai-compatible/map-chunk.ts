import type { FinishReason } from "@tessera/protocol";
import { mapOpenAIFinishReason } from "./map-finish-reason.js";

/** What one `chat.completion.chunk` (or a non-stream `chat.completion` choice) carries that Tessera keeps. */
export interface ChunkContent {
  text: string;
  logprobs: number[] | undefined;
  /** Token ids, where the server reports them (llama-server puts `id` in each logprobs entry). */
  tokens: number[] | undefined;
  finish: FinishReason | undefined;
  usage: { prompt_tokens: number; completion_tokens: number } | undefined;
}

interface LogprobEntry {
  logprob?: unknown;
  id?: unknown;
}

interface WireChoice {
  delta?: { content?: unknown };
  message?: { content?: unknown };
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
  return {
    text: typeof content === "string" ? content : "",
    logprobs,
    tokens,
    finish: mapOpenAIFinishReason(choice?.finish_reason),
    usage,
  };
}
