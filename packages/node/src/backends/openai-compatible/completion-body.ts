import type { GenerateRequest } from "../adapter.js";
import { rawPromptText } from "../raw-prompt.js";

/**
 * A raw-prompt request → the body of `POST /v1/completions` (OpenAI's legacy text completion, which vLLM, SGLang,
 * llama-server and MAX serve): the prompt as text, fed with no chat template. A continuation (failover) sends the
 * prompt followed by the text already produced, so every flavour continues it the same way, whatever it does with
 * assistant prefixes in chat. `logprobs` is the legacy integer (alternatives per token): what the job asked for, else 1.
 *
 * A job with canonical prompt ids (`promptTokens`, backends/design.md "Canonical prompt") sends them as the prompt,
 * OpenAI's integer-array form, followed by the continuation prefix's ids, or its text where the ids are unknown
 * (llama-server reads a mixed array, tokenising each string in place). JSON mode is never sent here: a raw prompt
 * with it and prompt ids with it are refused before this (llama-server runs its canonical JSON mode under a grammar,
 * llama-server/constrained-completion.ts).
 */
export function completionBody(request: GenerateRequest, stream: boolean, options: { logprobs: boolean; streamUsage: boolean }): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: request.model,
    prompt: request.promptTokens !== undefined ? idPrompt(request.promptTokens, request) : rawPromptText(request),
    max_tokens: request.sampling.max_tokens,
    temperature: request.sampling.temperature,
    top_p: request.sampling.top_p,
    stream,
  };
  if (request.sampling.seed !== undefined) body.seed = request.sampling.seed;
  // The legacy integer: alternatives per token, each token's own log-probability always. A client's ask wins.
  if (request.sampling.logprobs) body.logprobs = request.sampling.top_logprobs ?? 0;
  else if (options.logprobs) body.logprobs = 1;
  if (stream && options.streamUsage) body.stream_options = { include_usage: true };
  return body;
}

/** Prompt ids, then the continuation prefix's ids, or its text where they are unknown (as a trailing string). */
export function idPrompt(ids: readonly number[], request: Pick<GenerateRequest, "assistantPrefix" | "assistantPrefixTokens">): Array<number | string> {
  if (request.assistantPrefixTokens?.length) return [...ids, ...request.assistantPrefixTokens];
  return request.assistantPrefix ? [...ids, request.assistantPrefix] : [...ids];
}
