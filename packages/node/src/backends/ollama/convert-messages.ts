import { type ChatMessage, type Sampling, TesseraError, callableTools } from "@tessera/protocol";

/**
 * Tessera request → Ollama `/api/chat` body. The assistant prefix (failover continuation) becomes a trailing
 * assistant message: Ollama's chat templates leave the last assistant turn open (no end-of-turn token), so the model
 * continues it and only the continuation is returned. Sampling maps to `options`: `num_predict`, `temperature`,
 * `top_p`, `seed`.
 * - `response_format` → `format`: `"json"` for `json_object`, the schema itself for `json_schema` (Ollama compiles
 *   it to a grammar).
 * - tools → `tools` (OpenAI's shape); earlier calls → `tool_calls` with `arguments` as an object, results → `tool`
 *   messages with the called function's `tool_name`. Ollama has no `tool_choice`: `none` sends no tools, `auto` is
 *   its only behaviour, and `required` or a named function cannot be honoured, so they are refused (a TesseraError
 *   bad_request naming `tool_choice`).
 */
export interface OllamaMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: { function: { name: string; arguments: unknown } }[];
  tool_name?: string;
}

export interface OllamaChatBody {
  model: string;
  messages: OllamaMessage[];
  stream: boolean;
  options: { num_predict: number; temperature: number; top_p: number; seed?: number };
  keep_alive?: string | number;
  logprobs?: boolean;
  format?: "json" | Record<string, unknown>;
  tools?: unknown[];
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
  const names = new Map<string, string>();
  const messages = input.messages.map((m): OllamaMessage => {
    if (m.role === "assistant" && m.tool_calls) {
      for (const c of m.tool_calls) names.set(c.id, c.function.name);
      return { role: "assistant", content: m.content, tool_calls: m.tool_calls.map((c) => ({ function: { name: c.function.name, arguments: parseArguments(c.function.arguments) } })) };
    }
    if (m.role === "tool") {
      const name = names.get(m.tool_call_id ?? "");
      return name ? { role: "tool", content: m.content, tool_name: name } : { role: "tool", content: m.content };
    }
    return { role: m.role, content: m.content };
  });
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
  const format = input.sampling.response_format;
  if (format?.type === "json_object") body.format = "json";
  else if (format?.type === "json_schema") body.format = format.json_schema.schema ?? {};
  const { tools, required } = callableTools(input.sampling.tools, input.sampling.tool_choice);
  if (required) throw new TesseraError("bad_request", "ollama cannot force a tool call: tool_choice required or a named function is not supported on this node", { param: "tool_choice" });
  if (tools.length > 0) body.tools = tools;
  return body;
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Ollama wants an object; a model's malformed arguments are passed on as the string they were.
    return text;
  }
}
