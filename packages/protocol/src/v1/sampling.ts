import { z } from "zod";
import { ResponseFormat } from "./response-format.js";
import { ToolChoice, Tools } from "./tools.js";

/** Limits shared by the native and OpenAI request shapes. One definition each. */
export const MAX_TOKENS_LIMIT = 32_768;
export const DEFAULT_MAX_TOKENS = 512;
export const DEFAULT_TEMPERATURE = 0.7;
export const DEFAULT_TOP_P = 1;

export const MaxTokens = z.number().int().min(1).max(MAX_TOKENS_LIMIT);
export const Temperature = z.number().min(0).max(2);
export const TopP = z.number().gt(0).max(1);
export const Seed = z.number().int().min(0).max(2 ** 32 - 1);
export const ModelName = z.string().min(1).max(256);
/** Stop sequences: at most 4 (as OpenAI), each 1 to 256 characters. */
export const MAX_STOP_SEQUENCES = 4;
export const StopSequence = z.string().min(1, "a stop sequence cannot be empty").max(256);
export const StopSequences = z.array(StopSequence).max(MAX_STOP_SEQUENCES, `at most ${MAX_STOP_SEQUENCES} stop sequences`);
/** What clients send: one sequence or a list (OpenAI's `stop`); `normalizeStop` makes it a list. */
export const StopParam = z.union([StopSequence, StopSequences]);
export function normalizeStop(stop: string | string[] | null | undefined): string[] | undefined {
  if (stop == null) return undefined;
  const list = typeof stop === "string" ? [stop] : stop;
  return list.length > 0 ? list : undefined;
}
/** Alternatives per token a client may ask for (`top_logprobs`), as OpenAI allows. */
export const MAX_TOP_LOGPROBS = 20;
export const TopLogprobs = z.number().int().min(0).max(MAX_TOP_LOGPROBS);
export const NodeId = z.string().regex(/^[0-9a-f]{64}$/, "node_id must be a 64-character lowercase hex public key");

/** The sampling settings a job carries to a node. */
export const Sampling = z.object({
  max_tokens: MaxTokens,
  temperature: Temperature,
  top_p: TopP,
  seed: Seed.optional(),
  /** Applied by the coordinator to the text it relays (every backend, across failover); nodes may use it to stop early. */
  stop: StopSequences.optional(),
  /** The answer must be JSON (response-format.ts); the node constrains generation or refuses the job. */
  response_format: ResponseFormat.optional(),
  /** Functions the model may call (tools.ts); a node whose backend cannot offer them refuses the job. */
  tools: Tools.optional(),
  tool_choice: ToolChoice.optional(),
  /** false: at most one call per answer. Absent: the backend's default (OpenAI's: several allowed). */
  parallel_tool_calls: z.boolean().optional(),
  /**
   * Return each generated token's log-probability (the model's own, temperature 1, before any sampler transform) and
   * its `top_logprobs` likeliest alternatives; a node whose backend cannot refuses the job (`unsupported_parameter`).
   */
  logprobs: z.boolean().optional(),
  top_logprobs: TopLogprobs.optional(),
});
export type Sampling = z.infer<typeof Sampling>;
