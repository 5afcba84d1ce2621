import { TesseraError } from "@tessera/protocol";
import type { EmbeddingRequest, EmbeddingResult } from "../adapter.js";
import { errorFromFetchFailure, errorFromResponse } from "../http/backend-error.js";
import { embeddingInputCount, tokenCountFrom, vectorFrom } from "../http/embedding-vectors.js";

/** Families of encoder-only models (BERT and its kin): they only embed, so Ollama models of these are embedding models. */
const EMBEDDING_FAMILIES = new Set(["bert", "nomic-bert", "nomic-bert-moe", "xlm-roberta", "jina-bert-v2", "modern-bert", "neo-bert"]);

/** An installed model is served for embeddings when the operator names it or its family only embeds. */
export function isOllamaEmbeddingModel(tag: { name: string; details?: { families?: unknown } }, named: readonly string[]): boolean {
  const bare = tag.name.endsWith(":latest") ? tag.name.slice(0, -":latest".length) : tag.name;
  if (named.includes(tag.name) || named.includes(bare)) return true;
  const families = tag.details?.families;
  return Array.isArray(families) && families.length > 0 && families.every((f) => typeof f === "string" && EMBEDDING_FAMILIES.has(f));
}

/**
 * Ollama's native `POST /api/embed` (`{model, input: [texts], truncate: false, keep_alive}` → `{embeddings,
 * prompt_eval_count}`; its vectors are already L2-normalised). `truncate: false`, so an input longer than the model's
 * context is an error (as OpenAI's is) rather than silently cut. Ollama takes text only: token-id inputs are refused.
 */
export async function postOllamaEmbed(
  call: { url: string; fetch: typeof globalThis.fetch; keepAlive?: string | number },
  request: EmbeddingRequest,
): Promise<EmbeddingResult> {
  if (!("texts" in request.input)) {
    throw new TesseraError("unsupported_parameter", "ollama: embeddings take text inputs only, not token ids", { param: "input" });
  }
  let res: Response;
  try {
    res = await call.fetch(call.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: request.model, input: request.input.texts, truncate: false, ...(call.keepAlive !== undefined ? { keep_alive: call.keepAlive } : {}) }),
      signal: request.signal,
    });
  } catch (err) {
    throw errorFromFetchFailure("ollama", call.url, err);
  }
  if (!res.ok) throw await errorFromResponse("ollama", res);
  const body = (await res.json()) as { embeddings?: unknown; prompt_eval_count?: unknown };
  const count = embeddingInputCount(request.input);
  if (!Array.isArray(body.embeddings) || body.embeddings.length !== count) {
    throw new TesseraError("internal_error", `ollama: ${Array.isArray(body.embeddings) ? body.embeddings.length : "no"} embeddings for ${count} inputs`);
  }
  return { vectors: body.embeddings.map((v, i) => vectorFrom("ollama", v, i)), promptTokens: tokenCountFrom(body.prompt_eval_count) };
}
