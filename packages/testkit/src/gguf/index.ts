export * from "./gguf-format.js";
export * from "./float16.js";
export * from "./gguf-writer.js";
export * from "./gguf-metadata-reader.js";
export * from "./seeded-random.js";
export * from "./spm-vocab.js";
export * from "./tiny-model.js";
export * from "./k-quants.js";
