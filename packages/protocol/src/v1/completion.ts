import { z } from "zod";
import { MAX_CHOICES, OPENAI_DEFAULT_TEMPERATURE } from "./chat-completion.js";
import { MaxTokens, ModelName, Seed, StopParam, Temperature, TopP } from "./sampling.js";
import type { Usage } from "./job.js";
import type { TokenLogprob } from "./stream-part.js";

/** Alternatives per token the legacy `logprobs` integer may ask for. */
export const MAX_COMPLETION_LOGPROBS = 5;

/**
 * `POST /v1/completions`, OpenAI's legacy text completion: the model continues a raw text prompt, with no chat
 * template. Each prompt runs as a raw-prompt job (session.ts `JobAssignment.raw_prompt`). Fields we would have to
 * ignore silently are refused by name before this parse (`unsupportedCompletionField`).
 */

/** OpenAI's default `max_tokens` on this endpoint (chat's is unbounded; ours there is DEFAULT_MAX_TOKENS). */
export const COMPLETION_DEFAULT_MAX_TOKENS = 16;

/** A prompt is text the model continues; an empty one has nothing to continue (OpenAI would start a new document). */
export const CompletionPromptText = z.string().min(1, "prompt cannot be empty");

/**
 * A string, or a list of strings (each a prompt of its own, each answered with `n` choices). Token-id prompts
 * (numbers, lists of numbers) are refused: a network of backends with different tokenizers has no one vocabulary.
 */
export const CompletionPrompt = z.union(
  [CompletionPromptText, z.array(CompletionPromptText).min(1, "prompt cannot be an empty list").max(MAX_CHOICES, `at most ${MAX_CHOICES} prompts`)],
  { error: "prompt must be a string or a list of strings (token-id prompts are not supported)" },
);

export const CompletionRequest = z
  .looseObject({
    model: ModelName,
    prompt: CompletionPrompt,
    max_tokens: MaxTokens.nullish(),
    temperature: Temperature.nullish(),
    top_p: TopP.nullish(),
    seed: Seed.nullish(),
    stop: StopParam.nullish(),
    n: z.number().int().min(1).max(MAX_CHOICES, `n is at most ${MAX_CHOICES}: each choice is a job of its own`).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
    /** The legacy integer: each token's log-probability and this many likeliest alternatives (OpenAI allows 0 to 5). */
    logprobs: z.number().int().min(0).max(MAX_COMPLETION_LOGPROBS, `logprobs is at most ${MAX_COMPLETION_LOGPROBS} on this endpoint`).nullish(),
  })
  .superRefine((req, ctx) => {
    const prompts = Array.isArray(req.prompt) ? req.prompt.length : 1;
    if (prompts * (req.n ?? 1) > MAX_CHOICES) {
      ctx.addIssue({ code: "custom", message: `prompts × n is at most ${MAX_CHOICES}: each choice is a job of its own`, path: ["n"] });
    }
  });
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** The prompts of a request, in order: choice `i` answers prompt `floor(i / n)` (OpenAI's order). */
export function completionPrompts(req: Pick<CompletionRequest, "prompt">): string[] {
  return Array.isArray(req.prompt) ? req.prompt : [req.prompt];
}

export function completionSampling(req: CompletionRequest): { max_tokens: number; temperature: number; top_p: number } {
  return {
    max_tokens: req.max_tokens ?? COMPLETION_DEFAULT_MAX_TOKENS,
    temperature: req.temperature ?? OPENAI_DEFAULT_TEMPERATURE,
    top_p: req.top_p ?? 1,
  };
}

export type CompletionFinishReason = "stop" | "length";

/** A choice's `logprobs` in the legacy shape: parallel lists, `text_offset` counted in the choice's text from 0. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

/** Tokens as the legacy shape lists them, the first starting at `offset` characters into the choice's text. */
export function legacyLogprobs(tokens: readonly TokenLogprob[], offset = 0): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  for (const t of tokens) {
    out.tokens.push(t.token);
    out.token_logprobs.push(t.logprob);
    out.top_logprobs.push(Object.fromEntries(t.top_logprobs.map((a) => [a.token, a.logprob])));
    out.text_offset.push(at);
    at += t.token.length;
  }
  return out;
}

export interface CompletionChoice {
  text: string;
  index: number;
  /** With `logprobs` asked: the tokens of this text (in a stream chunk, of this chunk's text); else null. */
  logprobs: CompletionLogprobs | null;
  finish_reason: CompletionFinishReason | null;
}

export interface Completion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: CompletionChoice[];
  /** Whole answers: always. Stream chunks: only with `stream_options.include_usage`, null but on the last chunk. */
  usage?: Usage | null;
}

/** Validated and honoured by the completions route. */
export const HONOURED_COMPLETION_FIELDS = ["model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "n", "stream", "stream_options", "logprobs"] as const;

/** Accepted and ignored: bookkeeping for OpenAI's own platform, with no effect on the answer. */
export const IGNORED_COMPLETION_FIELDS = ["user", "metadata", "store", "service_tier"] as const;

/** Fields not honoured, accepted only at the value that asks for nothing (what SDKs send by default). */
const NEUTRAL_VALUES: Record<string, (value: unknown) => boolean> = {
  suffix: (v) => v === "",
  echo: (v) => v === false,
  best_of: (v) => v === 1,
  logit_bias: (v) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0,
  frequency_penalty: (v) => v === 0,
  presence_penalty: (v) => v === 0,
};

const KNOWN = new Set<string>([...HONOURED_COMPLETION_FIELDS, ...IGNORED_COMPLETION_FIELDS]);

/**
 * The first field of a completion request Tessera would have to ignore silently, with its error code and message;
 * or undefined. `unsupported_parameter` for OpenAI parameters it does not implement, `bad_request` for unknown ones
 * (as OpenAI answers them), and for token-id prompts.
 */
export function unsupportedCompletionField(body: unknown): { param: string; code: "bad_request" | "unsupported_parameter"; message: string } | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  for (const [field, value] of Object.entries(body)) {
    if (KNOWN.has(field) || value === null || value === undefined) continue;
    if (!Object.hasOwn(NEUTRAL_VALUES, field)) return { param: field, code: "bad_request", message: `unrecognized request argument: ${field}` };
    if (NEUTRAL_VALUES[field]!(value)) continue;
    return { param: field, code: "unsupported_parameter", message: `${field} is not supported on /v1/completions: Tessera does not ignore it silently, so leave it out` };
  }
  const prompt = (body as { prompt?: unknown }).prompt;
  const tokenIds = (v: unknown) => typeof v === "number" || (Array.isArray(v) && v.some((x) => typeof x === "number"));
  if (tokenIds(prompt) || (Array.isArray(prompt) && prompt.some(tokenIds))) {
    return { param: "prompt", code: "unsupported_parameter", message: "prompt as token ids is not supported: send the prompt as text" };
  }
  return undefined;
}
