import { TesseraError, type ErrorCode } from "@tessera/protocol";
import type { EmbeddingRequest, EmbeddingResult } from "../adapter.js";
import { errorFromFetchFailure, errorFromResponse } from "../http/backend-error.js";
import { embeddingInputCount, tokenCountFrom, vectorFrom } from "../http/embedding-vectors.js";

/**
 * `POST /v1/embeddings` on an OpenAI-compatible server (vLLM and SGLang serving an embedding model, llama-server
 * started with `--embeddings`, MAX, any OpenAI-compatible server): the input as OpenAI spells it (a list of strings or
 * of token-id lists), `encoding_format: "float"`, no `dimensions`. The answer's `data[].embedding` in `index` order,
 * `usage.prompt_tokens`. A server that cannot (a generative model, embeddings not enabled) answers 4xx, passed on with
 * its message.
 */
export interface EmbeddingsCall {
  kind: string;
  url: string;
  headers: Record<string, string>;
  fetch: typeof globalThis.fetch;
  refineError?: (status: number, message: string) => ErrorCode | undefined;
}

export async function postOpenAIEmbeddings(call: EmbeddingsCall, request: EmbeddingRequest): Promise<EmbeddingResult> {
  const input = "texts" in request.input ? request.input.texts : request.input.tokens;
  let res: Response;
  try {
    res = await call.fetch(call.url, {
      method: "POST",
      headers: call.headers,
      body: JSON.stringify({ model: request.model, input, encoding_format: "float" }),
      signal: request.signal,
    });
  } catch (err) {
    throw errorFromFetchFailure(call.kind, call.url, err);
  }
  if (!res.ok) throw await errorFromResponse(call.kind, res, call.refineError);
  const body = (await res.json()) as { data?: unknown; usage?: { prompt_tokens?: unknown } };
  if (!Array.isArray(body.data)) throw new TesseraError("internal_error", `${call.kind}: the embeddings answer has no data list`);
  const count = embeddingInputCount(request.input);
  if (body.data.length !== count) throw new TesseraError("internal_error", `${call.kind}: ${body.data.length} embeddings for ${count} inputs`);
  const vectors: Array<number[] | Float32Array> = new Array(count);
  for (const [position, item] of (body.data as Array<{ index?: unknown; embedding?: unknown }>).entries()) {
    const index = typeof item?.index === "number" ? item.index : position;
    if (!Number.isInteger(index) || index < 0 || index >= count || vectors[index] !== undefined) {
      throw new TesseraError("internal_error", `${call.kind}: embedding index ${String(item?.index)} is out of place`);
    }
    vectors[index] = vectorFrom(call.kind, item?.embedding, index);
  }
  return { vectors, promptTokens: tokenCountFrom(body.usage?.prompt_tokens) };
}
