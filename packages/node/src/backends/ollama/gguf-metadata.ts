import { readGgufFileInfo } from "node-llama-cpp";
import type { GgufKeys } from "./show-template.js";

/**
 * Reads the metadata a canonical prompt needs from the GGUF blob Ollama serves a model from (show-template.ts
 * `modelBlobPath`): `tokenizer.chat_template` (which `/api/show` never reports) and the vocabulary, as flat keys.
 * Resolves undefined when this node cannot read the file (Ollama on another host or in a container: ENOENT, EACCES) or
 * it is not a GGUF file; the model then keeps Ollama's own template (canonical-chat.ts). The header only: no tensors.
 */
export type ReadModelFile = (path: string) => Promise<GgufKeys | undefined>;

export const readGgufTemplateMetadata: ReadModelFile = async (path) => {
  let metadata: Record<string, unknown>;
  try {
    const info = await readGgufFileInfo(path, { readTensorInfo: false, logWarnings: false, ignoreKeys: ["tokenizer.ggml.scores", "tokenizer.ggml.merges"] });
    metadata = info.metadata as unknown as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const tokenizer = (metadata.tokenizer ?? {}) as { chat_template?: unknown; ggml?: Record<string, unknown> };
  const keys: GgufKeys = { "tokenizer.chat_template": tokenizer.chat_template };
  for (const [key, value] of Object.entries(tokenizer.ggml ?? {})) keys[`tokenizer.ggml.${key}`] = value;
  return keys;
};
