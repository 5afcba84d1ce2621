import type { BackendAdapter } from "../adapter.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";

/**
 * Modular MAX (`max serve`, default `:8080`): OpenAI-compatible with `GET /health`. MAX documents no prefill /
 * `continue_final_message`, so a request with an assistant prefix is refused with a `bad_request` error part
 * (a continuation must go to a backend that can continue; repeating the prefix would corrupt the answer).
 * Reports usage, finish reason and per-token logprobs (`logprobs:true`, documented by MAX's REST API).
 */
export interface MaxOptions {
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
}

export function createMaxAdapter(options: MaxOptions): BackendAdapter {
  return createOpenAICompatibleAdapter({ ...options, kind: "max", assistantPrefix: "unsupported", generationOptions: { jsonObject: "as-schema" } });
}
