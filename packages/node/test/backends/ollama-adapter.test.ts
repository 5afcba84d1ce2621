import { startFakeOllama, type FakeOllama } from "@tessera/testkit";
import { afterEach, describe, expect, it } from "vitest";
import type { PullProgress } from "../../src/backends/adapter.js";
import { createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";

let fake: FakeOllama;
afterEach(async () => {
  await fake.http.close();
});

describe("ollama adapter: model management", () => {
  it("pulls a model with streamed byte progress, after which it is listed", async () => {
    fake = await startFakeOllama({ registry: [{ name: "llama3.2:3b", sizeBytes: 2_019_393_189 }], pullSteps: 4 });
    const ollama = createOllamaAdapter({ baseURL: fake.url });
    const progress: PullProgress[] = [];
    await ollama.pull("llama3.2:3b", (p) => progress.push(p));
    expect(progress[0]).toEqual({ status: "pulling manifest" });
    const bytes = progress.filter((p) => p.totalBytes !== undefined).map((p) => p.completedBytes);
    expect(bytes).toEqual([504_848_297, 1_009_696_595, 1_514_544_892, 2_019_393_189]);
    expect(progress.at(-1)).toEqual({ status: "success" });
    expect((await ollama.listModels()).map((m) => m.id)).toEqual(["llama3.2:3b"]);
  });

  it("a name the registry lacks fails the pull with model_not_found", async () => {
    fake = await startFakeOllama();
    const ollama = createOllamaAdapter({ baseURL: fake.url });
    await expect(ollama.pull("no-such:1b", () => undefined)).rejects.toMatchObject({
      code: "model_not_found",
      message: expect.stringContaining("file does not exist"),
    });
  });

  it("removes a model; removing a missing one is model_not_found", async () => {
    fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 10 }] });
    const ollama = createOllamaAdapter({ baseURL: fake.url });
    await ollama.remove("qwen2.5:7b");
    expect(await ollama.listModels()).toEqual([]);
    await expect(ollama.remove("qwen2.5:7b")).rejects.toMatchObject({ code: "model_not_found" });
  });

  it("reports installed vs loaded from /api/tags and /api/ps, and load/unload with keep_alive", async () => {
    fake = await startFakeOllama({
      installed: [
        { name: "qwen2.5:7b", sizeBytes: 4_683_087_332 },
        { name: "llama3.2:3b", sizeBytes: 2_019_393_189 },
      ],
    });
    const ollama = createOllamaAdapter({ baseURL: fake.url, keepAlive: "10m" });
    expect(await ollama.listModels()).toEqual([
      { id: "qwen2.5:7b", sizeBytes: 4_683_087_332, loaded: false, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      { id: "llama3.2:3b", sizeBytes: 2_019_393_189, loaded: false, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
    ]);
    await ollama.load("qwen2.5:7b");
    expect((await ollama.listModels()).find((m) => m.id === "qwen2.5:7b")?.loaded).toBe(true);
    expect(fake.http.requests.at(-3)?.body).toMatchObject({ model: "qwen2.5:7b", messages: [], keep_alive: "10m" });
    await ollama.unload("qwen2.5:7b");
    expect((await ollama.listModels()).find((m) => m.id === "qwen2.5:7b")?.loaded).toBe(false);
  });

  it("sends sampling as Ollama options, keep_alive and logprobs on chat", async () => {
    fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 10 }] });
    const ollama = createOllamaAdapter({ baseURL: fake.url, keepAlive: -1 });
    await ollama.doGenerate({
      model: "qwen2.5:7b",
      messages: [{ role: "user", content: "hi" }],
      sampling: { max_tokens: 7, temperature: 0.2, top_p: 0.9, seed: 42 },
      assistantPrefix: "Hello!",
    });
    expect(fake.http.requests.at(-1)?.body).toEqual({
      model: "qwen2.5:7b",
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "Hello!" },
      ],
      stream: false,
      options: { num_predict: 7, temperature: 0.2, top_p: 0.9, seed: 42 },
      keep_alive: -1,
      logprobs: true,
    });
  });
});
