export {};
export * from "./fakes/index.js";
export * from "./gguf/index.js";
