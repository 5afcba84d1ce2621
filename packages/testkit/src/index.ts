export * from "./fakes/index.js";
export * from "./gguf/index.js";
export * from "./greedy-reference.js";
export * from "./cluster/index.js";
export * from "./schema-violations.js";
export * from "./anvil.js";
export * from "./llama-server/index.js";
export * from "./replicas/index.js";
