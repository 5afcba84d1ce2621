/** Reads a model's hyper-parameters (layer count, widths) without loading any tensor: for placement and runners. */
import { openGguf } from "./gguf-reader.js";
import { readLlamaConfig, type LlamaConfig } from "./llama-config.js";

export function readModelConfig(path: string): LlamaConfig {
  const file = openGguf(path);
  try {
    return readLlamaConfig(file);
  } finally {
    file.close();
  }
}
