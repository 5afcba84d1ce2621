export { type ChatTemplateSource, type RenderedPrompt, LLAMA_CPP_DEFAULT_TEMPLATE, formatFallbackPrompt, hasOwnTemplate, renderChat } from "./render-chat.js";
export { PromptMismatchError, assemblePromptTokens, promptTokensRefusal, sameTokens } from "./prompt-tokens.js";
