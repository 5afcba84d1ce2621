import type { ChatMessage } from "@tessera/protocol";
import { type ChatHistoryItem, type ChatWrapper, type LlamaModel, type Token, resolveChatWrapper } from "node-llama-cpp";

/**
 * How the embedded backend turns chat messages into prompt tokens. The GGUF's own chat template wins; a model
 * without one gets the documented fallback below. `@tessera/testkit`'s greedyReference uses this same formatter.
 */
const FALLBACK_ROLE_LABEL: Record<ChatMessage["role"], string> = { system: "System", user: "User", assistant: "Assistant", tool: "Tool" };

/**
 * The fallback template (text only; BOS is added as a token when the model wants one):
 * `System: …\nUser: …\nAssistant: …\n` per message, then `Assistant:` with no trailing space.
 */
export function formatFallbackPrompt(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `${FALLBACK_ROLE_LABEL[m.role]}: ${m.content}\n`).join("") + "Assistant:";
}

/**
 * A raw prompt's tokens (`/v1/completions`), as llama.cpp's server tokenizes a text prompt: no template, BOS first
 * when the model asks for one (`add_bos`), special-token text such as `<|im_start|>` read as those tokens.
 */
export function rawPromptTokens(model: LlamaModel, text: string): Token[] {
  const tokens = model.tokenize(text, true);
  const bos = model.tokens.bos;
  return bos != null && model.tokens.shouldPrependBosToken ? [bos, ...tokens] : tokens;
}

export interface PromptFormatter {
  /** "chat-template" when the GGUF carries `tokenizer.chat_template`, else "fallback". */
  readonly kind: "chat-template" | "fallback";
  /** Tokens that open a new assistant turn after `messages`; generation continues right after them. */
  promptTokens(messages: readonly ChatMessage[]): Token[];
}

function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((m): ChatHistoryItem => {
    if (m.role === "system") return { type: "system", text: m.content };
    // Tool turns are rewritten before formatting (tool-prompt.ts); one that reaches here is read as user input.
    if (m.role === "user" || m.role === "tool") return { type: "user", text: m.content };
    return { type: "model", response: [m.content] };
  });
  history.push({ type: "model", response: [] }); // the open assistant turn the model writes
  return history;
}

export function createPromptFormatter(model: LlamaModel): PromptFormatter {
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  if (typeof template === "string" && template.length > 0) {
    const wrapper: ChatWrapper = resolveChatWrapper(model, { warningLogs: false });
    return {
      kind: "chat-template",
      promptTokens(messages) {
        const { contextText } = wrapper.generateContextState({ chatHistory: toChatHistory(messages) });
        return contextText.tokenize(model.tokenizer);
      },
    };
  }
  const bos = model.tokens.bos;
  const addBos = bos != null && model.tokens.shouldPrependBosToken;
  return {
    kind: "fallback",
    promptTokens(messages) {
      const tokens = model.tokenize(formatFallbackPrompt(messages), false);
      return addBos ? [bos, ...tokens] : tokens;
    },
  };
}
