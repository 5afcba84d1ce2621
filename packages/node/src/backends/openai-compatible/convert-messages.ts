import type { ChatMessage, ToolCall } from "@tessera/protocol";

/**
 * How a backend continues an assistant message another node started (failover):
 * - `continue-final-message`: trailing assistant message + `continue_final_message:true, add_generation_prompt:false`
 *   (vLLM, SGLang: transformers' chat-template flag; the template leaves the last turn open);
 * - `trailing-assistant`: a trailing assistant message alone (llama-server and llama-swap prefill it by default);
 * - `unsupported`: the backend would start a new turn (MAX): a prefix is refused rather than silently repeated.
 */
export type AssistantPrefixMode = "continue-final-message" | "trailing-assistant" | "unsupported";

export interface OpenAIChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  /** null on an assistant turn that only called tools, as OpenAI writes it. */
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

export interface ConvertedMessages {
  messages: OpenAIChatMessage[];
  /** Extra top-level request fields the mode needs. */
  extra: Record<string, unknown>;
}

export class AssistantPrefixUnsupportedError extends Error {}

export function convertMessages(
  messages: ChatMessage[],
  assistantPrefix: string | undefined,
  mode: AssistantPrefixMode,
): ConvertedMessages {
  const out: OpenAIChatMessage[] = messages.map((m): OpenAIChatMessage => {
    if (m.role === "assistant" && m.tool_calls) return { role: "assistant", content: m.content || null, tool_calls: m.tool_calls };
    if (m.role === "tool") return { role: "tool", content: m.content, tool_call_id: m.tool_call_id! };
    return { role: m.role, content: m.content };
  });
  if (assistantPrefix === undefined || assistantPrefix === "") return { messages: out, extra: {} };
  if (mode === "unsupported") {
    throw new AssistantPrefixUnsupportedError("this backend cannot continue an assistant message (no prefill support)");
  }
  out.push({ role: "assistant", content: assistantPrefix });
  if (mode === "continue-final-message") {
    return { messages: out, extra: { continue_final_message: true, add_generation_prompt: false } };
  }
  return { messages: out, extra: {} };
}
