import { type FakeOllama, type FakeOpenAICompatible, type OpenAIFlavourName, fakeEmbedding, startFakeOllama, startFakeOpenAICompatible } from "@tessera/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { createBackendAdapter } from "../../src/backends/create-backend-adapter.js";
import { postOpenAIEmbeddings } from "../../src/backends/openai-compatible/embeddings.js";

/**
 * Embeddings on every HTTP backend, against fakes that speak each server's wire format (fake-embeddings.ts): the
 * OpenAI-compatible family through `POST /v1/embeddings`, Ollama through `POST /api/embed`. An operator names the
 * embedding models of an OpenAI-compatible server (`embedding_models`); Ollama's BERT-family models are found alone.
 */
let openai: FakeOpenAICompatible | undefined;
let ollama: FakeOllama | undefined;
afterEach(async () => {
  await openai?.http.close();
  await ollama?.http.close();
  openai = ollama = undefined;
});

const asArrays = (vectors: ArrayLike<number>[]) => vectors.map((v) => Array.from(v));
const FLAVOURS: Array<[OpenAIFlavourName, "vllm" | "sglang" | "max" | "llama-server" | "llama-swap"]> = [
  ["vllm", "vllm"],
  ["sglang", "sglang"],
  ["max", "max"],
  ["llama-server", "llama-server"],
  ["llama-swap", "llama-swap"],
];

describe.each(FLAVOURS)("%s: POST /v1/embeddings", (flavour, kind) => {
  it("announces the named embedding model for embeddings only, and passes texts and token ids on, vectors in order", async () => {
    const models = flavour === "llama-swap" ? ["chat-model", "embed-model"] : ["embed-model"];
    openai = await startFakeOpenAICompatible({ flavour, models, embeddingModels: ["embed-model"], embeddingDimension: 24 });
    const adapter = createBackendAdapter({ kind, baseURL: openai.url, embeddingModels: ["embed-model"] })!;
    const listed = await adapter.listModels();
    expect(listed.find((m) => m.id === "embed-model")!.features).toEqual(["embeddings"]);
    if (flavour === "llama-swap") expect(listed.find((m) => m.id === "chat-model")!.features).toBeUndefined();

    const texts = await adapter.embed!({ model: "embed-model", input: { texts: ["hello", "a fox", "hello"] } });
    expect(asArrays(texts.vectors)).toEqual(["hello", "a fox", "hello"].map((t) => fakeEmbedding(t, 24)));
    expect(texts.promptTokens).toBeGreaterThan(0);
    const sent = openai.http.requests.filter((r) => r.path === "/v1/embeddings").at(-1)!.body;
    expect(sent).toEqual({ model: "embed-model", input: ["hello", "a fox", "hello"], encoding_format: "float" });

    const ids = await adapter.embed!({ model: "embed-model", input: { tokens: [[1, 2, 3], [9]] } });
    expect(asArrays(ids.vectors)).toEqual([fakeEmbedding([1, 2, 3], 24), fakeEmbedding([9], 24)]);
    expect(openai.http.requests.at(-1)!.body).toMatchObject({ input: [[1, 2, 3], [9]] });
  });

  it("a model the server cannot embed with is the server's 400, passed on with its message", async () => {
    openai = await startFakeOpenAICompatible({ flavour, models: ["chat-model"] });
    const adapter = createBackendAdapter({ kind, baseURL: openai.url })!;
    expect((await adapter.listModels())[0]!.features).toBeUndefined();
    await expect(adapter.embed!({ model: "chat-model", input: { texts: ["x"] } })).rejects.toMatchObject({
      code: "bad_request",
      message: expect.stringMatching(/does not support Embeddings API/),
    });
  });
});

describe("ollama: POST /api/embed", () => {
  it("finds its BERT-family models (or the named ones), embeds texts in order, refuses token ids and chat models", async () => {
    ollama = await startFakeOllama({
      installed: [
        { name: "nomic-embed-text", sizeBytes: 274_302_450, embedding: true },
        { name: "qwen2.5:7b", sizeBytes: 4_683_087_332 },
      ],
    });
    const adapter = createBackendAdapter({ kind: "ollama", baseURL: ollama.url })!;
    const listed = await adapter.listModels();
    expect(listed.find((m) => m.id === "nomic-embed-text:latest")!.features).toEqual(["embeddings"]);
    expect(listed.find((m) => m.id === "qwen2.5:7b")!.features).toBeUndefined();

    const result = await adapter.embed!({ model: "nomic-embed-text:latest", input: { texts: ["why is the sky blue?", "hi"] } });
    expect(asArrays(result.vectors)).toEqual([fakeEmbedding("why is the sky blue?"), fakeEmbedding("hi")]);
    expect(result.promptTokens).toBeGreaterThan(0);
    expect(ollama.http.requests.at(-1)).toMatchObject({ path: "/api/embed", body: { model: "nomic-embed-text:latest", input: ["why is the sky blue?", "hi"], truncate: false } });

    await expect(adapter.embed!({ model: "nomic-embed-text:latest", input: { tokens: [[1, 2]] } })).rejects.toMatchObject({ code: "unsupported_parameter" });
    await expect(adapter.embed!({ model: "qwen2.5:7b", input: { texts: ["x"] } })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/does not support embeddings/) });
    await expect(adapter.embed!({ model: "nope", input: { texts: ["x"] } })).rejects.toMatchObject({ code: "model_not_found" });

    const named = createBackendAdapter({ kind: "ollama", baseURL: ollama.url, embeddingModels: ["qwen2.5:7b"] })!;
    expect((await named.listModels()).find((m) => m.id === "qwen2.5:7b")!.features).toEqual(["embeddings"]);
  });
});

describe("a malformed embeddings answer from an OpenAI-compatible server", () => {
  const call = (body: unknown) => ({
    kind: "vllm",
    url: "http://backend/v1/embeddings",
    headers: {},
    fetch: (async () => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } })) as typeof fetch,
  });
  const request = { model: "m", input: { texts: ["a", "b"] } };

  it.each([
    ["no data", {}, /no data list/],
    ["too few vectors", { data: [{ index: 0, embedding: [1] }] }, /1 embeddings for 2 inputs/],
    ["an index twice", { data: [{ index: 0, embedding: [1] }, { index: 0, embedding: [1] }] }, /out of place/],
    ["a null in a vector", { data: [{ index: 0, embedding: [1] }, { index: 1, embedding: [null] }] }, /not a list of finite numbers/],
  ])("is an internal_error (%s)", async (_what, body, message) => {
    await expect(postOpenAIEmbeddings(call(body), request)).rejects.toMatchObject({ code: "internal_error", message: expect.stringMatching(message) });
  });

  it("puts vectors in index order and reads base64 float32", async () => {
    const b64 = Buffer.from(new Float32Array([0.5, -2]).buffer).toString("base64");
    const result = await postOpenAIEmbeddings(call({ data: [{ index: 1, embedding: b64 }, { index: 0, embedding: [1, 2] }], usage: { prompt_tokens: 5 } }), request);
    expect(asArrays(result.vectors)).toEqual([[1, 2], [0.5, -2]]);
    expect(result.promptTokens).toBe(5);
  });
});
