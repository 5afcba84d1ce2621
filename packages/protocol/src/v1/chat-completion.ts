import { z } from "zod";
import { ChatMessages } from "./chat-message.js";
import { DEFAULT_MAX_TOKENS, MaxTokens, ModelName, Seed, StopParam, Temperature, TopLogprobs, TopP } from "./sampling.js";
import type { Usage } from "./job.js";
import { ResponseFormatParam } from "./response-format.js";
import { ToolChoice, type ToolCall, Tools } from "./tools.js";
import type { TokenLogprob } from "./stream-part.js";

/** Choices one request may ask for (`n`): each runs as a job of its own, so the bound keeps one request's load sane. */
export const MAX_CHOICES = 8;

/**
 * `POST /v1/chat/completions`, the OpenAI shape: the fields we honour, validated. Fields we would have to ignore
 * silently are refused by name before this parse (`unsupportedChatField`, chat-fields.ts). This is a translation
 * layer onto the native job, not a second pipeline.
 */
export const ChatCompletionRequest = z.looseObject({
  model: ModelName,
  messages: ChatMessages,
  max_tokens: MaxTokens.nullish(),
  max_completion_tokens: MaxTokens.nullish(),
  temperature: Temperature.nullish(),
  top_p: TopP.nullish(),
  seed: Seed.nullish(),
  stop: StopParam.nullish(),
  n: z.number().int().min(1).max(MAX_CHOICES, `n is at most ${MAX_CHOICES}: each choice is a job of its own`).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  response_format: ResponseFormatParam.nullish(),
  tools: Tools.nullish(),
  tool_choice: ToolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: TopLogprobs.nullish(),
}).superRefine((req, ctx) => {
  // As OpenAI: alternatives are given only with the tokens' own log-probabilities.
  if (req.top_logprobs != null && req.top_logprobs > 0 && req.logprobs !== true) {
    ctx.addIssue({ code: "custom", message: "top_logprobs needs logprobs: true", path: ["top_logprobs"] });
  }
  // As OpenAI: a tool_choice other than none needs tools, and a named one must be among them.
  const choice = req.tool_choice;
  if (choice == null || choice === "none") return;
  const tools = req.tools ?? [];
  if (tools.length === 0) {
    ctx.addIssue({ code: "custom", message: "tool_choice is only allowed when tools are specified", path: ["tool_choice"] });
  } else if (typeof choice === "object" && !tools.some((t) => t.function.name === choice.function.name)) {
    ctx.addIssue({ code: "custom", message: `tool_choice names ${choice.function.name}, which is not among tools`, path: ["tool_choice", "function", "name"] });
  }
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const OPENAI_DEFAULT_TEMPERATURE = 1;

export function chatCompletionMaxTokens(req: ChatCompletionRequest): number {
  return req.max_completion_tokens ?? req.max_tokens ?? DEFAULT_MAX_TOKENS;
}

export type OpenAIFinishReason = "stop" | "length" | "tool_calls";

/** A token in OpenAI's `logprobs.content`: `bytes` is the token text's UTF-8 bytes. */
export interface OpenAITokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

/** A choice's `logprobs`, as OpenAI answers it when asked (null otherwise). */
export interface OpenAIChoiceLogprobs {
  content: OpenAITokenLogprob[];
  refusal: null;
}

/** A node's token log-probabilities as OpenAI shows them, with each text's bytes. */
export function openAITokenLogprobs(tokens: readonly TokenLogprob[]): OpenAITokenLogprob[] {
  const encoder = new TextEncoder();
  const bytes = (text: string) => [...encoder.encode(text)];
  return tokens.map((t) => ({
    token: t.token,
    logprob: t.logprob,
    bytes: bytes(t.token),
    top_logprobs: t.top_logprobs.map((a) => ({ token: a.token, logprob: a.logprob, bytes: bytes(a.token) })),
  }));
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: "assistant"; content: string | null; tool_calls?: ToolCall[] };
    finish_reason: OpenAIFinishReason;
    logprobs?: OpenAIChoiceLogprobs | null;
  }>;
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: "assistant"; content?: string; tool_calls?: ToolCallDelta[] };
    finish_reason: OpenAIFinishReason | null;
    logprobs?: OpenAIChoiceLogprobs | null;
  }[];
  usage?: Usage | null;
}

/** One streamed piece of a tool call: the first for an index has id, type and name; later ones add arguments. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments: string };
}

export interface OpenAIModel {
  id: string;
  object: "model";
  /** Unix seconds. */
  created: number;
  owned_by: string;
}

export interface OpenAIModelList {
  object: "list";
  data: OpenAIModel[];
}
