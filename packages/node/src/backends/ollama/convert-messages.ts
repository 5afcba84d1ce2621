import type { ChatMessage, Sampling } from "@tessera/protocol";

/**
 * Tessera request → Ollama `/api/chat` body. The assistant prefix (failover continuation) becomes a trailing
 * assistant message: Ollama's chat templates leave the last assistant turn open (no end-of-turn token), so the model
 * continues it and only the continuation is returned. Sampling maps to `options`: `num_predict`, `temperature`,
 * `top_p`, `seed`.
 */
export interface OllamaChatBody {
  model: string;
  messages: { role: "system" | "user" | "assistant"; content: string }[];
  stream: boolean;
  options: { num_predict: number; temperature: number; top_p: number; seed?: number };
  keep_alive?: string | number;
  logprobs?: boolean;
}

export function toOllamaChatBody(input: {
  model: string;
  messages: ChatMessage[];
  sampling: Sampling;
  assistantPrefix?: string;
  stream: boolean;
  keepAlive?: string | number;
  logprobs: boolean;
}): OllamaChatBody {
  const messages = input.messages.map((m) => ({ role: m.role, content: m.content }));
  if (input.assistantPrefix) messages.push({ role: "assistant", content: input.assistantPrefix });
  const options: OllamaChatBody["options"] = {
    num_predict: input.sampling.max_tokens,
    temperature: input.sampling.temperature,
    top_p: input.sampling.top_p,
  };
  if (input.sampling.seed !== undefined) options.seed = input.sampling.seed;
  const body: OllamaChatBody = { model: input.model, messages, stream: input.stream, options };
  if (input.keepAlive !== undefined) body.keep_alive = input.keepAlive;
  if (input.logprobs) body.logprobs = true;
  return body;
}
