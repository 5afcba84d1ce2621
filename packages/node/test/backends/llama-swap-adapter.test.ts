import { fakeTokenId, startFakeOpenAICompatible, tokenize } from "@tessera/testkit";
import { describe, expect, it } from "vitest";
import { createLlamaServerAdapter } from "../../src/backends/llama-server/llama-server-adapter.js";

describe("llama-server / llama-swap specifics", () => {
  it("llama-swap: loaded follows the hot-swapped model, unknown names are model_not_found", async () => {
    const fake = await startFakeOpenAICompatible({ flavour: "llama-swap", models: ["qwen2.5-7b", "llama3.1-8b"] });
    try {
      const adapter = createLlamaServerAdapter({ baseURL: fake.url, swap: true });
      expect(adapter.kind).toBe("llama-swap");
      expect(await adapter.listModels()).toEqual([
        { id: "qwen2.5-7b", loaded: false },
        { id: "llama3.1-8b", loaded: false },
      ]);
      await adapter.doGenerate({ model: "llama3.1-8b", messages: [{ role: "user", content: "hi" }], sampling: { max_tokens: 4, temperature: 0, top_p: 1 } });
      expect((await adapter.listModels()).filter((m) => m.loaded).map((m) => m.id)).toEqual(["llama3.1-8b"]);
      await expect(
        adapter.doGenerate({ model: "nope", messages: [{ role: "user", content: "hi" }], sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }),
      ).rejects.toMatchObject({ code: "model_not_found", message: expect.stringContaining("could not find real modelID") });
    } finally {
      await fake.http.close();
    }
  });

  it("llama-server still loading its model is unhealthy with its own message", async () => {
    const fake = await startFakeOpenAICompatible({ flavour: "llama-server", models: ["m"] });
    try {
      fake.loading = true;
      const health = await createLlamaServerAdapter({ baseURL: fake.url }).health();
      expect(health).toEqual({ ok: false, message: expect.stringContaining("HTTP 503 (Loading model)") });
    } finally {
      await fake.http.close();
    }
  });

  it("llama-server: token ids from its logprobs ride on the text deltas (exact continuation elsewhere)", async () => {
    const fake = await startFakeOpenAICompatible({ flavour: "llama-server", models: ["m"], behaviour: { reply: "one two three" } });
    try {
      const adapter = createLlamaServerAdapter({ baseURL: fake.url });
      const ids: number[] = [];
      for await (const p of adapter.doStream({ model: "m", messages: [{ role: "user", content: "count" }], sampling: { max_tokens: 8, temperature: 0, top_p: 1 } })) {
        if (p.type === "text-delta") ids.push(...(p.tokens ?? []));
      }
      expect(ids).toEqual(tokenize("one two three").map(fakeTokenId));
    } finally {
      await fake.http.close();
    }
  });
});
