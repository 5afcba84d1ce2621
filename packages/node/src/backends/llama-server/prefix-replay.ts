import type { GenerateRequest } from "../adapter.js";
import { EXACT_REPLAY_MAX_TOKENS } from "../exact-replay.js";
import { errorFromFetchFailure, errorFromResponse } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";

export interface LlamaServerPrefixReplayOptions {
  baseURL: string;
  fetch: typeof globalThis.fetch;
  headers: Record<string, string>;
  kind: string;
}

/**
 * Brings llama-server's slot to where the node that began an answer stood, before the continuation runs there as one
 * request of prompt + prefix (exact-replay.ts says why the steps matter). Without it the server evaluates the whole
 * prefix in one batch, and a greedy continuation parts from the uninterrupted answer tens of tokens later.
 */
export type LlamaServerPrefixReplay = (prompt: readonly number[], prefix: readonly number[], signal?: AbortSignal) => Promise<void>;

/**
 * Each step is `POST /completion` with `n_predict: 1` (its one sampled token is never evaluated, so it leaves no
 * trace in the cache):
 * 1. the prompt alone with `cache_prompt: false`, so it is evaluated afresh as one batch, as the first node did, even
 *    when the slot holds it already (a prompt found whole in the cache has its last token evaluated alone again);
 * 2. then the prompt and each prefix token but the last, with `cache_prompt: true`: the slot keeps what it evaluated,
 *    so each request decodes one new token alone.
 * The continuation then finds all but the prefix's last token cached, evaluates that one alone, and generates.
 *
 * llama-server gives a request the idle slot whose cached prompt shares the most with it, so the steps and the
 * continuation land on one slot while it is idle. On a server busy with other requests they may not; the continuation
 * is then evaluated in one batch, as without the replay: faithful, exact for as long as a batch stays exact. A prefix
 * longer than EXACT_REPLAY_MAX_TOKENS is not replayed, as on the embedded engine.
 */
export function createLlamaServerPrefixReplay(options: LlamaServerPrefixReplayOptions): LlamaServerPrefixReplay {
  const url = joinUrl(options.baseURL, "/completion");
  const step = async (tokens: readonly number[], cachePrompt: boolean, signal?: AbortSignal): Promise<void> => {
    let res: Response;
    try {
      res = await options.fetch(url, {
        method: "POST",
        headers: options.headers,
        body: JSON.stringify({ prompt: tokens, n_predict: 1, temperature: 0, cache_prompt: cachePrompt, stream: false }),
        signal,
      });
    } catch (err) {
      throw errorFromFetchFailure(options.kind, url, err);
    }
    if (!res.ok) throw await errorFromResponse(options.kind, res);
    await res.arrayBuffer();
  };
  return async (prompt, prefix, signal) => {
    if (prefix.length === 0 || prefix.length > EXACT_REPLAY_MAX_TOKENS) return;
    await step(prompt, false, signal);
    for (let i = 1; i < prefix.length; i++) await step([...prompt, ...prefix.slice(0, i)], true, signal);
  };
}

/**
 * The request continues an answer another node began, so its prefix replay has just filled the slot's cache for it
 * (`cache_prompt: true`). A fresh answer's prompt is evaluated afresh (`cache_prompt: false`), as the embedded engine
 * evaluates it on a cleared sequence: a prompt found whole in the cache has its last token evaluated alone again.
 */
export function continuesAnAnswer(request: Pick<GenerateRequest, "assistantPrefix" | "assistantPrefixTokens">): boolean {
  return (request.assistantPrefixTokens?.length ?? 0) > 0 || (request.assistantPrefix ?? "") !== "";
}
