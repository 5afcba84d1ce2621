import { z } from "zod";
import { ChatMessages } from "./chat-message.js";
import {
  DEFAULT_MAX_TOKENS,
  DEFAULT_TEMPERATURE,
  DEFAULT_TOP_P,
  MaxTokens,
  ModelName,
  NodeId,
  Seed,
  StopParam,
  Temperature,
  TopP,
} from "./sampling.js";
import { ResponseFormat } from "./response-format.js";

/** `POST /api/v1/jobs` body. */
export const JobCreateRequest = z.strictObject({
  model: ModelName,
  messages: ChatMessages,
  max_tokens: MaxTokens.default(DEFAULT_MAX_TOKENS),
  temperature: Temperature.default(DEFAULT_TEMPERATURE),
  top_p: TopP.default(DEFAULT_TOP_P),
  seed: Seed.optional(),
  stop: StopParam.optional(),
  /** The answer must be JSON: `json_object` or `json_schema` (OpenAI's shape). Tools exist on `/v1` only. */
  response_format: ResponseFormat.optional(),
  stream: z.boolean().default(false),
  node_id: NodeId.optional(),
});
export type JobCreateRequest = z.infer<typeof JobCreateRequest>;
