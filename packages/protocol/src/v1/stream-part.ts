import { z } from "zod";
import { ResultPart } from "./result-commitment.js";
import { ERROR_CODE_LIST } from "../errors.js";
import { ToolCall } from "./tools.js";
import { LOGPROB_FLOOR } from "./check.js";
import { MAX_TOP_LOGPROBS } from "./sampling.js";
import { PromptTokenIds } from "./prompt-tokens.js";

/**
 * The one internal stream-part union. Backends yield it, the session carries it, the coordinator translates it to
 * SSE only at the edge. Errors mid-stream are parts, not throws.
 */
export const FinishReason = z.enum(["stop", "length", "cancelled", "error"]);
export type FinishReason = z.infer<typeof FinishReason>;

/** One alternative for a generated token, as OpenAI's `top_logprobs` show it: its text and log-probability. */
export const TokenAlternative = z.object({ token: z.string().max(1024), logprob: z.number().min(LOGPROB_FLOOR).max(0) });
export type TokenAlternative = z.infer<typeof TokenAlternative>;
/** One generated token as OpenAI's `logprobs.content` shows it; `top_logprobs` as many as the job asked for. */
export const TokenLogprob = TokenAlternative.extend({ top_logprobs: z.array(TokenAlternative).max(MAX_TOP_LOGPROBS) });
export type TokenLogprob = z.infer<typeof TokenLogprob>;

export const TextDeltaPart = z.object({
  type: z.literal("text-delta"),
  text: z.string(),
  /** Log-probability of each token in this delta, where the backend reports it. */
  logprobs: z.array(z.number()).optional(),
  /** Token ids behind this delta, where the backend reports them; lets another node continue exactly (failover). */
  tokens: z.array(z.number().int().min(0)).optional(),
  /**
   * The tokens of this delta as the client sees them, when the job asked for `logprobs`: each token's text,
   * log-probability and likeliest alternatives, in order.
   */
  token_logprobs: z.array(TokenLogprob).max(4096).optional(),
});
export const UsagePart = z.object({
  type: z.literal("usage"),
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
});
/**
 * The tools the model called, all of them in one part, after any text and before usage and finish (a backend that
 * streams calls piecemeal assembles them first). The answer then ends as OpenAI's does with `finish_reason:
 * "tool_calls"`; a node lost before its finish takes its calls with it, and the next node makes them again.
 */
export const ToolCallsPart = z.object({
  type: z.literal("tool-calls"),
  calls: z.array(ToolCall).min(1).max(128),
  /** Token ids the calls were generated as, where the backend reports them (usage is counted from them). */
  tokens: z.array(z.number().int().min(0)).optional(),
});
/**
 * The prompt token ids this node ran (prompt-tokens.ts), before any text: node → coordinator only, never sent to
 * clients. The coordinator keeps the first node's list and hands it to every continuation and spot check.
 */
export const PromptPart = z.object({ type: z.literal("prompt"), tokens: PromptTokenIds });
export const FinishPart = z.object({ type: z.literal("finish"), reason: FinishReason });
export const ErrorPart = z.object({
  type: z.literal("error"),
  code: z.enum(ERROR_CODE_LIST as [string, ...string[]]),
  message: z.string(),
});

/** `result` (result-commitment.ts): the node's signature over its answer, just before `finish`; never sent to clients. */
export const StreamPart = z.discriminatedUnion("type", [PromptPart, TextDeltaPart, ToolCallsPart, UsagePart, ResultPart, FinishPart, ErrorPart]);
export type StreamPart = z.infer<typeof StreamPart>;
export type TextDeltaPart = z.infer<typeof TextDeltaPart>;
export type ToolCallsPart = z.infer<typeof ToolCallsPart>;
export type UsagePart = z.infer<typeof UsagePart>;
export type FinishPart = z.infer<typeof FinishPart>;
export type PromptPart = z.infer<typeof PromptPart>;
export type ErrorPart = z.infer<typeof ErrorPart>;
