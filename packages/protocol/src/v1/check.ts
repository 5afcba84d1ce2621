import { z } from "zod";
import { ChatMessage } from "./chat-message.js";
import { nodeMessage } from "./node-fields.js";
import { ModelName, Sampling } from "./sampling.js";
import { PromptTokenIds } from "./prompt-tokens.js";

/**
 * Spot checks (trust/design.md "Verification"): after a job was delivered, the coordinator may ask a reference node
 * (another operator, the same model) to score the answering node's tokens by teacher forcing. The reference renders
 * the messages with the model's own template, evaluates the prompt and the given tokens in one pass, and returns,
 * for each given token, its log-probability and rank under its own model, and the same for end-of-sequence after the
 * last one. Nothing of the job's text goes back.
 */
export const MAX_SCORED_TOKENS = 4096;
export const CHECK_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const TokenId = z.number().int().min(0).max(2 ** 31);
/** A log-probability: ≤ 0; the floor stands for "impossible", which JSON cannot spell as -Infinity. */
export const LOGPROB_FLOOR = -1e9;
const Logprob = z.number().min(LOGPROB_FLOOR).max(0);
const Rank = z.number().int().min(1).max(2 ** 31);

/**
 * The grammar a constrained answer was generated under (trust/design.md "Spot checks", constrained answers): the job's
 * `tools`, `tool_choice`, `parallel_tool_calls` and `response_format`, with the bounds a job's sampling has. The
 * reference renders the prompt as generation did (the tool prompt) and ranks the node's tokens among those the grammar
 * allows (node/src/verification/design.md). At least one of `tools` and `response_format`: otherwise nothing
 * constrained the answer and the field must be left out.
 */
export const CheckConstraint = Sampling.pick({ tools: true, tool_choice: true, parallel_tool_calls: true, response_format: true }).refine(
  (c) => c.tools !== undefined || c.response_format !== undefined,
  { message: "a constraint names tools or a response_format" },
);
export type CheckConstraint = z.infer<typeof CheckConstraint>;

export const CheckScore = z.object({
  type: z.literal("check.score"),
  check_id: z.string().regex(CHECK_ID_PATTERN),
  model: ModelName,
  messages: z.array(ChatMessage).min(1),
  /** The job was a raw prompt (session.ts `JobAssignment.raw_prompt`): score after messages[0].content fed as is. */
  raw_prompt: z.boolean().optional(),
  /**
   * The prompt ids the checked node claims it ran (prompt-tokens.ts). The reference renders `messages` itself and
   * compares: different ids fail the check (a node that lies about its prompt), the same ids are scored after.
   */
  prompt_tokens: PromptTokenIds.optional(),
  /** The answer was generated under this grammar (tools or JSON): the reference scores it under the same one. */
  constraint: CheckConstraint.optional(),
  output_tokens: z.array(TokenId).max(MAX_SCORED_TOKENS),
});
export type CheckScore = z.infer<typeof CheckScore>;

/** `top_mass`: the probability (temperature 1) of the reference's 20 likeliest tokens there; what judges sampled answers. */
export const ScoredPosition = z.object({ token: TokenId, logprob: Logprob, rank: Rank, top_mass: z.number().min(0).max(1).optional() });
export type ScoredPosition = z.infer<typeof ScoredPosition>;

export const CheckScores = z.object({
  type: z.literal("check.scores"),
  check_id: z.string().regex(CHECK_ID_PATTERN),
  /** Prompt tokens the reference evaluated: what the answering node should have reported. */
  prompt_tokens: z.number().int().min(0).max(10_000_000),
  positions: z.array(ScoredPosition).max(MAX_SCORED_TOKENS),
  eos: z.object({ logprob: Logprob, rank: Rank }),
});
export type CheckScores = z.infer<typeof CheckScores>;

/** The reference could not score (model not loaded, a token outside its vocabulary, …): the check is abandoned. */
export const CheckError = z.object({
  type: z.literal("check.error"),
  check_id: z.string().regex(CHECK_ID_PATTERN),
  message: nodeMessage(1024),
  /**
   * `prompt_mismatch`: the checked node's claimed prompt ids (`check.score` `prompt_tokens`) are not what the
   * reference renders from the messages. Not an abandoned check: the checked node failed it.
   */
  reason: z.enum(["prompt_mismatch"]).optional(),
});
export type CheckError = z.infer<typeof CheckError>;
