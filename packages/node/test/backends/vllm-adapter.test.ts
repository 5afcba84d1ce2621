import type { StreamPart } from "@tessera/protocol";
import { startFakeOpenAICompatible, type FakeOpenAICompatible } from "@tessera/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";
import { routeByModel } from "../../src/backends/vllm/route-by-model.js";

const fakes: FakeOpenAICompatible[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.http.close()));
});

async function vllm(model: string, reply: string) {
  const f = await startFakeOpenAICompatible({ flavour: "vllm", models: [model], behaviour: { reply } });
  fakes.push(f);
  return f;
}

async function text(parts: AsyncIterable<StreamPart>): Promise<string> {
  let t = "";
  for await (const p of parts) if (p.type === "text-delta") t += p.text;
  return t;
}

const req = (model: string) => ({ model, messages: [{ role: "user" as const, content: "hi" }], sampling: { max_tokens: 16, temperature: 0, top_p: 1 } });

describe("vllm: several instances, routed by model", () => {
  it("sends each request to the instance serving its model and lists every model", async () => {
    const a = await vllm("Qwen/Qwen2.5-7B-Instruct", "from qwen");
    const b = await vllm("meta-llama/Llama-3.1-8B-Instruct", "from llama");
    const adapter = createVllmAdapter({
      instances: [
        { host: a.url, model: "Qwen/Qwen2.5-7B-Instruct" },
        { host: b.url, model: "meta-llama/Llama-3.1-8B-Instruct" },
      ],
    });
    expect(await text(adapter.doStream(req("meta-llama/Llama-3.1-8B-Instruct")))).toBe("from llama");
    expect(await text(adapter.doStream(req("Qwen/Qwen2.5-7B-Instruct")))).toBe("from qwen");
    expect((await adapter.listModels()).map((m) => m.id).sort()).toEqual(["Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"]);
    const parts: StreamPart[] = [];
    for await (const p of adapter.doStream(req("mistral"))) parts.push(p);
    expect(parts).toEqual([{ type: "error", code: "model_not_found", message: expect.stringContaining("no instance serves mistral") }]);
  });

  it("one instance down: health names it, its model is no longer listed, the other keeps serving", async () => {
    const a = await vllm("qwen", "from qwen");
    const b = await vllm("llama", "from llama");
    const adapter = createVllmAdapter({ instances: [{ host: a.url, model: "qwen" }, { host: b.url, model: "llama" }] });
    await b.http.goDown();
    const health = await adapter.health();
    expect(health.ok).toBe(false);
    expect(health.ok === false && health.message).toMatch(/^llama: /);
    expect((await adapter.listModels()).map((m) => m.id)).toEqual(["qwen"]);
    expect(await text(adapter.doStream(req("qwen")))).toBe("from qwen");
  });

  it("asks vLLM to continue the final assistant message with its own flags", async () => {
    const a = await vllm("qwen", "Paris is the capital of France");
    const adapter = createVllmAdapter({ instances: [{ host: a.url, model: "qwen" }] });
    expect(await text(adapter.doStream({ ...req("qwen"), assistantPrefix: "Paris is" }))).toBe(" the capital of France");
    expect(a.http.requests.at(-1)?.body).toMatchObject({
      messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "Paris is" }],
      continue_final_message: true,
      add_generation_prompt: false,
      logprobs: true,
      stream_options: { include_usage: true },
    });
  });

  it("refuses an empty instance list with a clear bad_request", () => {
    expect(() => createVllmAdapter({ instances: [] })).toThrow(expect.objectContaining({ code: "bad_request" }));
  });
});

describe("routeByModel", () => {
  it.each([
    [[{ host: "a", model: "x" }, { host: "b", model: "y" }], "y", "b"],
    [[{ host: "a", model: "x" }], "y", undefined],
    [[{ host: "a" }], "anything", "a"],
    [[{ host: "a" }, { host: "b", model: "y" }], "z", undefined],
  ])("%j routes %s to %s", (instances, model, host) => {
    expect(routeByModel(instances, model)?.host).toBe(host);
  });
});

describe("vllm: logprobs a client asked for", () => {
  it("asks for top_logprobs and passes each token's text, log-probability and alternatives on its delta", async () => {
    const a = await vllm("qwen", "Paris is lovely");
    const adapter = createVllmAdapter({ instances: [{ host: a.url, model: "qwen" }] });
    const parts: StreamPart[] = [];
    for await (const p of adapter.doStream({ ...req("qwen"), sampling: { ...req("qwen").sampling, logprobs: true, top_logprobs: 2 } })) parts.push(p);
    expect(a.http.requests.at(-1)?.body).toMatchObject({ logprobs: true, top_logprobs: 2 });
    const deltas = parts.flatMap((p) => (p.type === "text-delta" ? [p] : []));
    const entries = deltas.flatMap((p) => p.token_logprobs ?? []);
    expect(entries.map((e) => e.token).join("")).toBe("Paris is lovely");
    for (const [i, e] of entries.entries()) {
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.top_logprobs[0]).toEqual({ token: e.token, logprob: e.logprob });
      expect(deltas.flatMap((p) => p.logprobs ?? [])[i]).toBe(e.logprob);
    }
  });

  it("without logprobs asked, sends no top_logprobs and deltas carry no alternatives", async () => {
    const a = await vllm("qwen", "Paris");
    const adapter = createVllmAdapter({ instances: [{ host: a.url, model: "qwen" }] });
    const parts: StreamPart[] = [];
    for await (const p of adapter.doStream(req("qwen"))) parts.push(p);
    expect(a.http.requests.at(-1)?.body).not.toHaveProperty("top_logprobs");
    for (const p of parts) if (p.type === "text-delta") expect(p.token_logprobs?.every((e) => e.top_logprobs.length === 0) ?? true).toBe(true);
  });
});
