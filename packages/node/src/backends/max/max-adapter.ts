import type { BackendAdapter } from "../adapter.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";

/**
 * Modular MAX (`max serve`, default `:8080`): OpenAI-compatible with `GET /health`. MAX documents no prefill /
 * `continue_final_message`, so a request with an assistant prefix is refused with a `bad_request` error part
 * (a continuation must go to a backend that can continue; repeating the prefix would corrupt the answer).
 * Reports usage, finish reason and per-token logprobs (`logprobs:true`, documented by MAX's REST API).
 * `response_format` as OpenAI spells it, `json_object` as the schema `{"type":"object"}` (structured output needs
 * `max serve --enable-structured-output`; without it MAX answers 400 and the client hears it); tools as sent.
 */
export interface MaxOptions {
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
  /** Models served as embedding models: announced for `/v1/embeddings` only. */
  embeddingModels?: readonly string[];
}

export function createMaxAdapter(options: MaxOptions): BackendAdapter {
  return createOpenAICompatibleAdapter({ ...options, kind: "max", assistantPrefix: "unsupported", generationOptions: { jsonObject: "as-schema" } });
}
