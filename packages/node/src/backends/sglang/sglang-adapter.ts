import type { BackendAdapter } from "../adapter.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";

/**
 * SGLang (`python -m sglang.launch_server`, default `:30000`): OpenAI-compatible with `GET /health`. Continues an
 * assistant message with `continue_final_message:true` + `add_generation_prompt:false`. Reports usage
 * (`stream_options.include_usage`), finish reason (`abort` → cancelled) and per-token logprobs (`logprobs:true`).
 * Its error bodies are top-level `{"object":"error","message",…}`; the shared reader handles both shapes.
 * `response_format` goes as OpenAI spells it, `json_object` as the schema `{"type":"object"}`; tools as sent
 * (`--tool-call-parser`).
 */
export interface SglangOptions {
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
  /** Models served as embedding models (`--is-embedding`): announced for `/v1/embeddings` only. */
  embeddingModels?: readonly string[];
}

export function createSglangAdapter(options: SglangOptions): BackendAdapter {
  return createOpenAICompatibleAdapter({ ...options, kind: "sglang", assistantPrefix: "continue-final-message", generationOptions: { jsonObject: "as-schema" } });
}
