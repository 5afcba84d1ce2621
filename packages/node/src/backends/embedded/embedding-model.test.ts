import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StreamPart } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEmbeddedBackend, type EmbeddedBackend } from "./embedded-backend.js";
import { isEmbeddingModelFile } from "./embedding-model.js";

/** The embedded engine on a tiny embedding model (a llama file with a mean pooling type) and on a chat model. */
let dir: string;
let embedPath: string;
let chatPath: string;
let embed: EmbeddedBackend;
let chat: EmbeddedBackend;
const WIDTH = 96;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-embedding-"));
  embedPath = (await makeTinyModel({ path: join(dir, "tiny-embed.gguf"), seed: 3, vocab: "bytes", pooling: "mean", embeddingLength: WIDTH, headCount: 4, headCountKv: 2 })).path;
  chatPath = (await makeTinyModel({ path: join(dir, "tiny-chat.gguf"), seed: 4, vocab: "bytes" })).path;
  embed = createEmbeddedBackend({ modelPath: embedPath, threads: 1, maxSequences: 1 });
  chat = createEmbeddedBackend({ modelPath: chatPath, threads: 1, maxSequences: 1 });
});
afterAll(async () => {
  await embed?.close();
  await chat?.close();
  await rm(dir, { recursive: true, force: true });
});

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

describe("embedding models on the embedded engine", () => {
  it("tells an embedding GGUF (pooling type) from a generative one", async () => {
    expect(await isEmbeddingModelFile(embedPath)).toBe(true);
    expect(await isEmbeddingModelFile(chatPath)).toBe(false);
  });

  it("announces embeddings, and not chat, for an embedding model; chat and not embeddings for a chat model", async () => {
    const [e] = await embed.listModels();
    expect(e!.features).toEqual(["embeddings"]);
    expect(e!.scoring).toBeUndefined();
    const [c] = await chat.listModels();
    expect(c!.features).toContain("chat");
    expect(c!.features).not.toContain("embeddings");
  });

  it("returns one unit vector of the model's width per input, the same for the same text, and counts the tokens", async () => {
    const result = await embed.embed!({ model: "tiny-embed", input: { texts: ["hello", "a fox", "hello"] } });
    expect(result.vectors).toHaveLength(3);
    for (const v of result.vectors) {
      expect(v.length).toBe(WIDTH);
      expect(norm(v)).toBeCloseTo(1, 5);
    }
    expect(Array.from(result.vectors[0]!)).toEqual(Array.from(result.vectors[2]!));
    expect(Array.from(result.vectors[0]!)).not.toEqual(Array.from(result.vectors[1]!));
    // Byte vocabulary: one token per byte, plus BOS (and EOS where the vocabulary appends one).
    expect(result.promptTokens).toBeGreaterThanOrEqual(5 + 5 + 5);
    expect(result.promptTokens).toBeLessThanOrEqual(5 + 5 + 5 + 3 * 2);
  });

  it("takes token ids, and refuses ids outside the vocabulary and inputs longer than the context", async () => {
    const byIds = await embed.embed!({ model: "tiny-embed", input: { tokens: [[1, 3 + 104, 3 + 105]] } });
    expect(byIds.vectors[0]!.length).toBe(WIDTH);
    await expect(embed.embed!({ model: "tiny-embed", input: { tokens: [[1, 5_000_000]] } })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/vocabulary/) });
    await expect(embed.embed!({ model: "tiny-embed", input: { texts: ["x".repeat(600)] } })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/context/) });
    await expect(embed.embed!({ model: "other", input: { texts: ["x"] } })).rejects.toMatchObject({ code: "model_not_found" });
  });

  it("an embedding model does not generate; a chat model does not embed", async () => {
    const parts: StreamPart[] = [];
    for await (const p of embed.doStream({ model: "tiny-embed", messages: [{ role: "user", content: "hi" }], sampling: { max_tokens: 4, temperature: 0, top_p: 1 } })) parts.push(p);
    expect(parts).toEqual([expect.objectContaining({ type: "error", code: "unsupported_parameter", message: expect.stringMatching(/embedding model.*\/v1\/embeddings/) })]);
    await expect(chat.embed!({ model: "tiny-chat", input: { texts: ["x"] } })).rejects.toMatchObject({ code: "unsupported_parameter", message: expect.stringMatching(/chat\/completions/) });
  });
});
