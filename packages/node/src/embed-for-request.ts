import { type EmbedError, type EmbedRequest, type EmbedResult, MAX_EMBEDDING_DIMENSIONS, TesseraError, encodeEmbedding } from "@tessera/protocol";
import type { BackendAdapter } from "./backends/adapter.js";

/**
 * A node's answer to `embed.request` (embeddings.ts): the backend's vectors, as base64 float32 in input order, or why
 * there are none. Checks its own backend's answer as the coordinator will (one vector per input, one dimension, finite
 * numbers), so a broken backend is reported as such rather than refused downstream. Never throws.
 */
export async function answerEmbedRequest(backend: BackendAdapter, request: EmbedRequest): Promise<EmbedResult | EmbedError> {
  const refuse = (code: EmbedError["code"], message: string): EmbedError => ({ type: "embed.error", request_id: request.request_id, code, message: message.slice(0, 1024) });
  if (!backend.embed) return refuse("unsupported_parameter", `backend ${backend.kind} does not compute embeddings`);
  const count = "texts" in request.input ? request.input.texts.length : request.input.tokens.length;
  try {
    const { vectors, promptTokens } = await backend.embed({ model: request.model, input: request.input });
    const dimensions = vectors[0]?.length ?? 0;
    if (vectors.length !== count) return refuse("internal_error", `the backend returned ${vectors.length} vectors for ${count} inputs`);
    if (dimensions < 1 || dimensions > MAX_EMBEDDING_DIMENSIONS || vectors.some((v) => v.length !== dimensions)) {
      return refuse("internal_error", `the backend returned vectors of differing or unsupported dimensions (${dimensions})`);
    }
    if (vectors.some((v) => !Array.prototype.every.call(v, (x: number) => Number.isFinite(x) && Number.isFinite(Math.fround(x))))) {
      return refuse("internal_error", "the backend returned a vector holding a number that is not finite in float32");
    }
    return {
      type: "embed.result",
      request_id: request.request_id,
      dimensions,
      embeddings: vectors.map((v) => encodeEmbedding(v)),
      prompt_tokens: Math.max(0, Math.floor(promptTokens)),
    };
  } catch (err) {
    if (err instanceof TesseraError) return refuse(err.code, err.message);
    return refuse("internal_error", `embedding failed: ${(err as Error).message}`);
  }
}
