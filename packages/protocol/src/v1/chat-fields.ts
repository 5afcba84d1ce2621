/**
 * Which fields of an OpenAI chat request Tessera honours, which it may ignore because ignoring them changes nothing a
 * client can see, and which it must refuse by name rather than ignore silently (OpenAI itself refuses unknown ones).
 * Pure: the OpenAI route asks `unsupportedChatField(body)` before it parses the request.
 */

/** Validated and honoured by the chat route. */
export const HONOURED_CHAT_FIELDS = [
  "model",
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "seed",
  "stop",
  "n",
  "stream",
  "stream_options",
  "response_format",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "logprobs",
  "top_logprobs",
] as const;

/** Accepted and ignored: bookkeeping for OpenAI's own platform, with no effect on the answer. */
export const IGNORED_CHAT_FIELDS = ["user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"] as const;

/** Fields Tessera cannot honour yet, accepted only at the value that asks for nothing (what SDKs send by default). */
const NEUTRAL_VALUES: Record<string, (value: unknown) => boolean> = {
  frequency_penalty: (v) => v === 0,
  presence_penalty: (v) => v === 0,
  logit_bias: (v) => typeof v === "object" && v !== null && Object.keys(v).length === 0,
  modalities: (v) => Array.isArray(v) && v.every((m) => m === "text"),
};

const KNOWN = new Set<string>([...HONOURED_CHAT_FIELDS, ...IGNORED_CHAT_FIELDS]);

/**
 * The first field of `body` Tessera would have to ignore silently, with the code and message to refuse it by; or
 * undefined. As on /v1/completions and /v1/embeddings: `bad_request` for a field OpenAI does not have either,
 * `unsupported_parameter` for an OpenAI parameter (or content part) Tessera does not implement.
 */
export function unsupportedChatField(body: unknown): { param: string; code: "bad_request" | "unsupported_parameter"; message: string } | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  for (const [field, value] of Object.entries(body)) {
    if (KNOWN.has(field) || value === null || value === undefined) continue;
    if (!Object.hasOwn(NEUTRAL_VALUES, field)) return { param: field, code: "bad_request", message: `unrecognized request argument: ${field}` };
    if (NEUTRAL_VALUES[field]!(value)) continue;
    return { param: field, code: "unsupported_parameter", message: `${field} is not supported yet: Tessera does not ignore it silently, so leave it out` };
  }
  const messages = (body as { messages?: unknown }).messages;
  if (Array.isArray(messages)) {
    for (const [i, m] of messages.entries()) {
      const message = m as { role?: unknown; content?: unknown; function_call?: unknown };
      // OpenAI's deprecated function calling (before tools): its `tool` successors are honoured.
      if (message?.role === "function") {
        return { param: `messages.${i}.role`, code: "unsupported_parameter", message: `messages.${i}: function messages are deprecated and not supported; use tool messages` };
      }
      if (message?.function_call != null) {
        return { param: `messages.${i}.function_call`, code: "unsupported_parameter", message: `messages.${i}: function_call is deprecated and not supported; use tool_calls` };
      }
      if (!Array.isArray(message?.content)) continue;
      for (const [j, part] of (message.content as { type?: unknown }[]).entries()) {
        if (part?.type === "text") continue;
        const what = part?.type === "image_url" ? "images" : part?.type === "input_audio" ? "audio" : `${String(part?.type)} parts`;
        return { param: `messages.${i}.content.${j}`, code: "unsupported_parameter", message: `messages.${i}.content.${j}: this model does not take ${what}; send text parts only` };
      }
    }
  }
  return undefined;
}
