export { type ChatTemplateSource, type RenderedPrompt, LLAMA_CPP_DEFAULT_TEMPLATE, formatFallbackPrompt, hasOwnTemplate, hasToolTurns, renderChat } from "./render-chat.js";
export { PromptMismatchError, assemblePromptTokens, promptTokensRefusal, sameTokens } from "./prompt-tokens.js";
