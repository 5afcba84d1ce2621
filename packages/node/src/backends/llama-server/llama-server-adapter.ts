import type { BackendAdapter } from "../adapter.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";
import { joinUrl } from "../http/join-url.js";
import { createLlamaServerPrompt, withCanonicalPrompt } from "./canonical-prompt.js";
import { createLlamaServerScorer } from "./llama-server-score.js";
import { withForcedToolCalls } from "./forced-tool-calls.js";
import { continuesAnAnswer, createLlamaServerPrefixReplay } from "./prefix-replay.js";
import { createLlamaServerConstrainedCompletion } from "./constrained-completion.js";

/**
 * llama.cpp's `llama-server` (default `:8080`) or llama-swap in front of several of them. OpenAI-compatible with
 * `GET /health` (llama-server: `{"status":"ok"}`, 503 while loading; llama-swap: `OK`).
 * - Assistant prefix: a trailing assistant message is prefilled by default (llama-server since b5255; disabled by
 *   `--no-prefill-assistant`, which an operator must not set on a Tessera node).
 * - Usage arrives in the final chunk (with `timings`); logprobs with `logprobs:true`, including token ids (`id`),
 *   which are passed on as `tokens` on text deltas.
 * - llama-swap routes by model name and hot-swaps the upstream process; `/running` says which model is resident,
 *   so `listModels` reports `loaded` truthfully; an unknown name is its 400 "could not find real modelID",
 *   mapped to `model_not_found`.
 * - Every chat runs as canonical prompt ids (canonical-prompt.ts): tools and tool turns written Tessera's one way
 *   (constrained/tool-prompt.ts), rendered by the one renderer every node uses from the template `/props` declares,
 *   and sent as token ids: to `/v1/completions`, or with tools or JSON mode to `/completion` under the one grammar
 *   text (constrained-completion.ts), so the answer is the embedded engine's, token for token.
 * - llama-swap (and a server without `/props`, not llama.cpp's) keeps the chat route: `tools` as OpenAI spells them,
 *   which llama-server takes when started with `--jinja`; a forced call it does not make fails the job rather than
 *   passing on prose (forced-tool-calls.ts).
 * - A continuation (failover) first replays its prefix into the server's slot one token at a time, as the first node
 *   evaluated it, so the join is exact (prefix-replay.ts).
 * - A fresh answer's prompt is evaluated afresh, as one batch (`cache_prompt: false`), as the embedded engine does on a
 *   cleared sequence: a prompt found whole in a slot's cache has its last token evaluated alone again, and a greedy
 *   answer then parts from the embedded engine's (and from its own on a fresh slot) tens of tokens later. Only a
 *   continuation uses the cache, which its prefix replay has just filled (prefix-replay.ts).
 * - One llama-server scores given tokens for spot checks (llama-server-score.ts), so its node can be a reference.
 */
export interface LlamaServerOptions {
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
  /** The URL is llama-swap rather than one llama-server. */
  swap?: boolean;
  /** Models served as embedding models (llama-server `--embeddings`): announced for `/v1/embeddings` only. */
  embeddingModels?: readonly string[];
}

export function createLlamaServerAdapter(options: LlamaServerOptions): BackendAdapter {
  const kind = options.swap ? "llama-swap" : "llama-server";
  const headers: Record<string, string> = { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
  // llama-swap routes only by the body's model, which /props and /tokenize do not carry: one llama-server renders
  // canonical prompts and scores its model for spot checks, llama-swap neither.
  const prompt = options.swap ? undefined : createLlamaServerPrompt({ baseURL: options.baseURL, fetch: options.fetch ?? globalThis.fetch, headers, kind });
  const score = prompt ? createLlamaServerScorer({ baseURL: options.baseURL, fetch: options.fetch ?? globalThis.fetch, headers, kind, prompt }) : undefined;
  const base = createOpenAICompatibleAdapter({
    baseURL: options.baseURL,
    fetch: options.fetch,
    apiKey: options.apiKey,
    kind,
    ...(score ? { score } : {}),
    assistantPrefix: "trailing-assistant",
    generationOptions: { jsonObject: "native" },
    embeddingModels: options.embeddingModels,
    completionFields: (request) => ({ cache_prompt: continuesAnAnswer(request) }),
    refineError: (status, message) =>
      status === 400 && message.includes("could not find real modelID") ? "model_not_found" : undefined,
    loadedModels: options.swap
      ? async (fetchFn, signal) => {
          const res = await fetchFn(joinUrl(options.baseURL, "/running"), { signal });
          if (!res.ok) return new Set();
          const body = (await res.json()) as { running?: { model?: string; state?: string }[] };
          return new Set((body.running ?? []).filter((r) => r.state === "ready").map((r) => r.model ?? ""));
        }
      : undefined,
  });
  const held = withForcedToolCalls(base);
  if (!prompt) return held;
  const http = { baseURL: options.baseURL, fetch: options.fetch ?? globalThis.fetch, headers, kind };
  return withCanonicalPrompt(held, prompt, createLlamaServerPrefixReplay(http), createLlamaServerConstrainedCompletion(http));
}
