export { createEmbeddedBackend, defaultEmbeddedThreads, type EmbeddedBackend, type EmbeddedBackendOptions } from "./embedded-backend.js";
export { createPromptFormatter, formatFallbackPrompt, rawPromptTokens, type PromptFormatter } from "./prompt-format.js";
export { TokenTextStream } from "./token-text-stream.js";
