import { type EmbedRequest, TesseraError, decodeEmbedding } from "@tessera/protocol";
import { describe, expect, it } from "vitest";
import type { BackendAdapter, EmbeddingResult } from "./backends/adapter.js";
import { answerEmbedRequest } from "./embed-for-request.js";

const REQUEST: EmbedRequest = { type: "embed.request", request_id: "r1", model: "m", input: { texts: ["a", "b"] } };

function backend(embed?: () => Promise<EmbeddingResult>): BackendAdapter {
  return { kind: "fake", health: async () => ({ ok: true }), listModels: async () => [], doGenerate: async () => { throw new Error("no"); }, doStream: async function* () {}, ...(embed ? { embed } : {}) };
}

describe("a node's answer to embed.request", () => {
  it("sends the vectors as base64 float32 in input order, with the dimension and the token count", async () => {
    const reply = await answerEmbedRequest(backend(async () => ({ vectors: [[0.5, -1, 2], Float32Array.from([3, 4, 5])], promptTokens: 6 })), REQUEST);
    expect(reply).toMatchObject({ type: "embed.result", request_id: "r1", dimensions: 3, prompt_tokens: 6 });
    if (reply.type !== "embed.result") throw new Error("unreachable");
    expect(Array.from(decodeEmbedding(reply.embeddings[0]!)!)).toEqual([0.5, -1, 2]);
    expect(Array.from(decodeEmbedding(reply.embeddings[1]!)!)).toEqual([3, 4, 5]);
  });

  it("reports a backend without embeddings, its refusals with their code, and a broken answer, never throwing", async () => {
    expect(await answerEmbedRequest(backend(), REQUEST)).toMatchObject({ type: "embed.error", code: "unsupported_parameter" });
    expect(await answerEmbedRequest(backend(async () => { throw new TesseraError("bad_request", "input.1 is too long"); }), REQUEST)).toMatchObject({ type: "embed.error", code: "bad_request", message: "input.1 is too long" });
    expect(await answerEmbedRequest(backend(async () => ({ vectors: [[1]], promptTokens: 1 })), REQUEST)).toMatchObject({ type: "embed.error", code: "internal_error" });
    expect(await answerEmbedRequest(backend(async () => ({ vectors: [[1, 2], [1]], promptTokens: 1 })), REQUEST)).toMatchObject({ type: "embed.error", code: "internal_error" });
    expect(await answerEmbedRequest(backend(async () => ({ vectors: [[1], [Number.NaN]], promptTokens: 1 })), REQUEST)).toMatchObject({ type: "embed.error", code: "internal_error" });
    expect(await answerEmbedRequest(backend(async () => ({ vectors: [[1], [1e39]], promptTokens: 1 })), REQUEST)).toMatchObject({ type: "embed.error", code: "internal_error" });
    expect(await answerEmbedRequest(backend(async () => { throw new Error("boom"); }), REQUEST)).toMatchObject({ type: "embed.error", code: "internal_error", message: expect.stringMatching(/boom/) });
  });
});
