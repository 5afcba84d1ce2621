import type { ModelFeature } from "@tessera/protocol";

/**
 * What each backend kind can do with a generative model it serves (protocol model-features.ts), in one table so the
 * node's announcement, the adapters and docs/api.md's parameters table agree. An adapter that knows better for one
 * model (an embedding-only model, say) sets `BackendModel.features` itself, which replaces this.
 *
 * - `logprobs` where the server returns each token's text and log-probability on OpenAI's `logprobs.content`
 *   (vLLM, SGLang, llama-server, MAX) or the embedded engine computes them (raw logits). Ollama's come only from recent
 *   versions, so an Ollama node does not promise them.
 * - `forced_tool_choice` everywhere but Ollama, which takes tools but cannot force a call.
 * - `raw_prompt` everywhere: the embedded engine tokenizes the prompt itself, the OpenAI-compatible family takes it on
 *   `POST /v1/completions`, Ollama on `/api/generate` with `raw: true` (raw-prompt.ts).
 */
const CHAT_WITH_CONSTRAINTS: readonly ModelFeature[] = ["chat", "raw_prompt", "response_format", "tools", "forced_tool_choice"];

const GENERATION_FEATURES: Readonly<Record<string, readonly ModelFeature[]>> = {
  embedded: [...CHAT_WITH_CONSTRAINTS, "logprobs"],
  vllm: [...CHAT_WITH_CONSTRAINTS, "logprobs"],
  sglang: [...CHAT_WITH_CONSTRAINTS, "logprobs"],
  "llama-server": [...CHAT_WITH_CONSTRAINTS, "logprobs"],
  "llama-swap": [...CHAT_WITH_CONSTRAINTS, "logprobs"],
  max: [...CHAT_WITH_CONSTRAINTS, "logprobs"],
  "openai-compatible": CHAT_WITH_CONSTRAINTS,
  ollama: ["chat", "raw_prompt", "response_format", "tools"],
};

/** The features a backend of `kind` offers for a generative model; chat alone for a kind this table does not know. */
export function generationFeatures(kind: string): ModelFeature[] {
  return [...(GENERATION_FEATURES[kind] ?? ["chat"])];
}
