import type { Sampling } from "@tessera/protocol";

/**
 * A raw-prompt request → Ollama's `/api/generate` body with `raw: true`: the prompt goes to the model as is, without
 * the model's template (nor its system prompt). A continuation (failover) sends the prompt followed by the text
 * already produced. Sampling maps to `options` as on `/api/chat`. Each streamed line carries its text in `response`.
 */
export interface OllamaRawGenerateBody {
  model: string;
  prompt: string;
  raw: true;
  stream: boolean;
  options: { num_predict: number; temperature: number; top_p: number; seed?: number };
  keep_alive?: string | number;
  logprobs?: boolean;
}

export function toOllamaRawGenerateBody(input: {
  model: string;
  prompt: string;
  sampling: Sampling;
  stream: boolean;
  keepAlive?: string | number;
  logprobs: boolean;
}): OllamaRawGenerateBody {
  const options: OllamaRawGenerateBody["options"] = {
    num_predict: input.sampling.max_tokens,
    temperature: input.sampling.temperature,
    top_p: input.sampling.top_p,
  };
  if (input.sampling.seed !== undefined) options.seed = input.sampling.seed;
  const body: OllamaRawGenerateBody = { model: input.model, prompt: input.prompt, raw: true, stream: input.stream, options };
  if (input.keepAlive !== undefined) body.keep_alive = input.keepAlive;
  if (input.logprobs) body.logprobs = true;
  return body;
}
