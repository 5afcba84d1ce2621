import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { embedMany } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { OpenAIEmbeddings } from "@langchain/openai";
import { type Cluster, makeTinyModel, startCluster, waitUntil } from "@tessera/testkit";

/**
 * Issue 11, `/v1/embeddings` on real processes: a coordinator, a daemon serving a chat model and a daemon serving an
 * embedding model (a tiny llama file with a mean pooling type), both on the embedded llama.cpp engine, driven by the
 * official `openai` client, and by the Vercel AI SDK's and LangChain's embedding models.
 */
let dir: string;
let cluster: Cluster;
let client: OpenAI;
const WIDTH = 128;
const EMBED_MODEL = "tiny-embed";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-e2e-embed-"));
  const chatPath = join(dir, "tiny-chat.gguf");
  const embedPath = join(dir, `${EMBED_MODEL}.gguf`);
  await makeTinyModel({ path: chatPath, seed: 42, vocab: "spm" });
  await makeTinyModel({ path: embedPath, seed: 9, vocab: "spm", pooling: "mean", embeddingLength: WIDTH, headCount: 4, headCountKv: 2, name: EMBED_MODEL });
  cluster = await startCluster({ nodes: 1, modelPath: chatPath });
  await cluster.addNode({ modelPath: embedPath });
  client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

describe("embeddings with the openai client on the embedded engine", () => {
  it("two inputs give two unit vectors of the model's dimension, with usage; the same text the same vector", async () => {
    const res = await client.embeddings.create({ model: EMBED_MODEL, input: ["a", "b"] });
    expect(res.object).toBe("list");
    expect(res.model).toBe(EMBED_MODEL);
    expect(res.data).toHaveLength(2);
    expect(res.data.map((d) => [d.object, d.index])).toEqual([["embedding", 0], ["embedding", 1]]);
    for (const d of res.data) {
      expect(d.embedding).toHaveLength(WIDTH);
      expect(norm(d.embedding)).toBeCloseTo(1, 4);
    }
    expect(res.data[0]!.embedding).not.toEqual(res.data[1]!.embedding);
    expect(res.usage.prompt_tokens).toBeGreaterThanOrEqual(2);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens);
    const again = await client.embeddings.create({ model: EMBED_MODEL, input: "a" });
    expect(again.data[0]!.embedding).toEqual(res.data[0]!.embedding);
    // Each answered request got a receipt, which the node that answered signed (it journals embeddings as served work).
    const signed = async () => {
      const text = await (await fetch(`${cluster.url}/metrics`)).text();
      const count = (outcome: string) => Number(new RegExp(`tessera_receipt_signatures_total\\{outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { signed: count("signed"), refused: count("refused") };
    };
    await waitUntil(async () => (await signed()).signed >= 2, 20_000);
    expect((await signed()).refused).toBe(0);
  }, 60_000);

  it("encoding_format base64 decodes (little-endian float32) to the same numbers as float", async () => {
    const floats = await client.embeddings.create({ model: EMBED_MODEL, input: ["the fox"], encoding_format: "float" });
    const base64 = await client.embeddings.create({ model: EMBED_MODEL, input: ["the fox"], encoding_format: "base64" });
    const text = base64.data[0]!.embedding as unknown as string;
    expect(typeof text).toBe("string");
    const bytes = Buffer.from(text, "base64");
    const decoded = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toHaveLength(WIDTH);
    expect(decoded).toEqual(floats.data[0]!.embedding);
  }, 60_000);

  it("token ids are taken as input too", async () => {
    const res = await client.embeddings.create({ model: EMBED_MODEL, input: [[1, 450, 1701], [1, 263]] });
    expect(res.data.map((d) => d.embedding.length)).toEqual([WIDTH, WIDTH]);
  }, 60_000);

  it("an embedding request for the chat model is a readable 400 in the client; so is dimensions", async () => {
    const chatModel = cluster.model!;
    const err = await client.embeddings.create({ model: chatModel, input: "a" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.message).toMatch(new RegExp(`model "${chatModel}" does not compute embeddings.*/v1/chat/completions.*${EMBED_MODEL}`));
    expect(e.code).toBe("unsupported_parameter");
    expect(e.param).toBe("model");
    const dims = await client.embeddings.create({ model: EMBED_MODEL, input: "a", dimensions: 64 }).catch((x: unknown) => x);
    expect(dims).toBeInstanceOf(OpenAI.BadRequestError);
    expect((dims as Error).message).toMatch(/dimensions is not supported/);
  }, 60_000);

  it("a chat request for the embedding model is a readable 400 naming /v1/embeddings", async () => {
    const err = await client.chat.completions.create({ model: EMBED_MODEL, messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toMatch(new RegExp(`model "${EMBED_MODEL}".*/v1/embeddings`));
  }, 60_000);

  it("the chat model still chats beside it", async () => {
    const reply = await client.chat.completions.create({ model: cluster.model!, messages: [{ role: "user", content: "hi" }], max_tokens: 4, temperature: 0 });
    expect(reply.choices[0]!.message.content!.length).toBeGreaterThan(0);
  }, 60_000);
});

describe("embeddings with the other clients", () => {
  it("the Vercel AI SDK's embedMany: one vector of the model's dimension per value, the same as the openai client's", async () => {
    const provider = createOpenAICompatible({ name: "tessera", baseURL: `${cluster.url}/v1`, apiKey: "open-mode" });
    const { embeddings, usage } = await embedMany({ model: provider.textEmbeddingModel(EMBED_MODEL), values: ["a", "b"], maxRetries: 0 });
    expect(embeddings.map((e) => e.length)).toEqual([WIDTH, WIDTH]);
    const official = await client.embeddings.create({ model: EMBED_MODEL, input: ["a", "b"], encoding_format: "float" });
    for (const [i, e] of embeddings.entries()) expect(e).toEqual(official.data[i]!.embedding);
    expect(usage.tokens).toBe(official.usage.prompt_tokens);
  }, 60_000);

  it("LangChain's OpenAIEmbeddings: embedDocuments and embedQuery, unit vectors of the model's dimension", async () => {
    const embedder = new OpenAIEmbeddings({ model: EMBED_MODEL, apiKey: "open-mode", maxRetries: 0, configuration: { baseURL: `${cluster.url}/v1` } });
    const docs = await embedder.embedDocuments(["a", "b"]);
    expect(docs.map((d) => d.length)).toEqual([WIDTH, WIDTH]);
    for (const d of docs) expect(norm(d)).toBeCloseTo(1, 4);
    expect(await embedder.embedQuery("a")).toEqual(docs[0]);
  }, 60_000);
});
