import type { ChatMessage } from "@tessera/protocol";
import type { LlamaModel, Token } from "node-llama-cpp";
import { type ChatTemplateSource, assemblePromptTokens, renderChat } from "../../prompt/index.js";

/**
 * How the embedded backend turns chat messages into prompt tokens: the canonical renderer (node/src/prompt/, the
 * GGUF's own Jinja template rendered as llama.cpp's server renders it, or the documented fallback for a file with
 * none), tokenised by this model. `@tessera/testkit`'s greedyReference uses this same formatter.
 */
export { formatFallbackPrompt } from "../../prompt/index.js";

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
  /** "chat-template" when the GGUF carries its own `tokenizer.chat_template`, else "fallback". */
  readonly kind: "chat-template" | "fallback";
  /** Tokens that open a new assistant turn after `messages`; generation continues right after them. */
  promptTokens(messages: readonly ChatMessage[]): Token[];
}

/** The model's template and special tokens as the renderer takes them (GGUF metadata; llama.cpp's add-BOS rule). */
export function chatTemplateSource(model: LlamaModel): ChatTemplateSource {
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  return {
    template: typeof template === "string" ? template : undefined,
    bosToken: model.tokens.bosString ?? "",
    eosToken: model.tokens.eosString ?? "",
    addBos: model.tokens.bos != null && model.tokens.shouldPrependBosToken,
  };
}

export function createPromptFormatter(model: LlamaModel): PromptFormatter {
  const source = chatTemplateSource(model);
  const bos = { id: model.tokens.bos ?? undefined, add: source.addBos };
  const kind = renderChat(source, []).kind;
  return {
    kind,
    promptTokens(messages) {
      const rendered = renderChat(source, messages);
      return assemblePromptTokens(bos, model.tokenize(rendered.text, rendered.parseSpecial)) as Token[];
    },
  };
}
