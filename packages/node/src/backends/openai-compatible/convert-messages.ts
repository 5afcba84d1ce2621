import type { ChatMessage } from "@tessera/protocol";

/**
 * How a backend continues an assistant message another node started (failover):
 * - `continue-final-message`: trailing assistant message + `continue_final_message:true, add_generation_prompt:false`
 *   (vLLM, SGLang: transformers' chat-template flag; the template leaves the last turn open);
 * - `trailing-assistant`: a trailing assistant message alone (llama-server and llama-swap prefill it by default);
 * - `unsupported`: the backend would start a new turn (MAX): a prefix is refused rather than silently repeated.
 */
export type AssistantPrefixMode = "continue-final-message" | "trailing-assistant" | "unsupported";

export interface OpenAIChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
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
  const out: OpenAIChatMessage[] = messages.map((m) => ({ role: m.role, content: m.content }));
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
