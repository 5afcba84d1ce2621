import type { BackendAdapter } from "../adapter.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";
import { createSglangScorer } from "./sglang-score.js";

/**
 * SGLang (`python -m sglang.launch_server`, default `:30000`): OpenAI-compatible with `GET /health`. Continues an
 * assistant message with `continue_final_message:true` + `add_generation_prompt:false`. Reports usage
 * (`stream_options.include_usage`), finish reason (`abort` → cancelled) and per-token logprobs (`logprobs:true`).
 * Its error bodies are top-level `{"object":"error","message",…}`; the shared reader handles both shapes.
 * `response_format` goes as OpenAI spells it, `json_object` as the schema `{"type":"object"}`; tools as sent
 * (`--tool-call-parser`).
 * With `scoring` (the operator's `reference_scoring`) it scores given tokens for spot checks through
 * `input_token_logprobs` (sglang-score.ts) and announces its models with `scoring: true`; without it, never.
 */
export interface SglangOptions {
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
  /** Models served as embedding models (`--is-embedding`): announced for `/v1/embeddings` only. */
  embeddingModels?: readonly string[];
  /** Serve as a spot-check reference (sglang-score.ts); SGLang names no EOS ids itself, so they are required here. */
  scoring?: { eosTokenIds: readonly number[] };
}

export function createSglangAdapter(options: SglangOptions): BackendAdapter {
  const { scoring, ...rest } = options;
  const headers: Record<string, string> = { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
  const score = scoring
    ? createSglangScorer({ baseURL: options.baseURL, fetch: options.fetch ?? globalThis.fetch, headers, kind: "sglang", eosTokenIds: scoring.eosTokenIds })
    : undefined;
  return createOpenAICompatibleAdapter({ ...rest, kind: "sglang", assistantPrefix: "continue-final-message", generationOptions: { jsonObject: "as-schema" }, ...(score ? { score } : {}) });
}
