export * from "./fake-behaviour.js";
export * from "./fake-tokens.js";
export * from "./fake-http-server.js";
export * from "./fake-ollama.js";
export * from "./openai-flavours.js";
export * from "./fake-openai-compatible.js";
export * from "./fake-tools.js";
