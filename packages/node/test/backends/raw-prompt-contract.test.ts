import type { StreamPart } from "@tessera/protocol";
import { type FakeBehaviour, type FakeHttpServer, type OpenAIFlavourName, fakeLogprob, fakeTokenId, startFakeOllama, startFakeOpenAICompatible, tokenize } from "@tessera/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BackendAdapter, GenerateRequest } from "../../src/backends/adapter.js";
import { createLlamaServerAdapter } from "../../src/backends/llama-server/llama-server-adapter.js";
import { createMaxAdapter } from "../../src/backends/max/max-adapter.js";
import { createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";
import { createOpenAICompatibleAdapter } from "../../src/backends/openai-compatible/openai-compatible-adapter.js";
import { createSglangAdapter } from "../../src/backends/sglang/sglang-adapter.js";
import { createStageOnlyBackend } from "../../src/backends/stage-only/stage-only-backend.js";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";

/**
 * Raw-prompt requests (`/v1/completions`) through every HTTP adapter, against fakes that speak each server's real
 * wire format: OpenAI's legacy `POST /v1/completions` (vLLM, SGLang, MAX, llama-server, llama-swap) and Ollama's
 * `POST /api/generate` with `raw: true`. The prompt reaches the server as is; a continuation sends prompt + prefix.
 */
const PROMPT = "<|im_start|>Once upon a time";
const REPLY = " there was a fox who jumped over the lazy dog";
const BASE: FakeBehaviour = { tokensPerSecond: 0, responseDelayMs: 0, failAfterTokens: undefined, dropAfterTokens: undefined, hold: undefined, reply: REPLY, toolArguments: "{}" };

interface Subject {
  adapter: BackendAdapter;
  model: string;
  http: FakeHttpServer;
  path: string;
  /** The server reports token ids with its logprobs (llama-server). */
  tokenIds: boolean;
}

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
const textOf = (parts: StreamPart[]) => parts.map((p) => (p.type === "text-delta" ? p.text : "")).join("");

function rawContract(name: string, start: () => Promise<Subject>): void {
  describe(`${name}: raw prompts`, () => {
    let s: Subject;
    const request = (patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
      model: s.model,
      messages: [{ role: "user", content: PROMPT }],
      rawPrompt: true,
      sampling: { max_tokens: 64, temperature: 0, top_p: 1, seed: 7 },
      ...patch,
    });
    beforeAll(async () => {
      s = await start();
    });
    afterAll(async () => {
      await s.http.close();
    });
    beforeEach(() => {
      s.http.setBehaviour(BASE);
      s.http.requests.length = 0;
    });
    const sent = () => s.http.requests.filter((r) => r.path === s.path).at(-1)?.body as Record<string, unknown>;

    it("streams the continuation of the prompt, sent as is to the server's raw endpoint, then usage and one finish", async () => {
      const parts = await collect(s.adapter.doStream(request()));
      expect(textOf(parts)).toBe(REPLY);
      const usage = parts.find((p) => p.type === "usage");
      expect(usage).toMatchObject({ completion_tokens: tokenize(REPLY).length });
      expect((usage as { prompt_tokens: number }).prompt_tokens).toBeGreaterThan(0);
      expect(parts.filter((p) => p.type === "finish")).toEqual([{ type: "finish", reason: "stop" }]);
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
      const body = sent();
      expect(body.prompt).toBe(PROMPT);
      expect(body.messages).toBeUndefined();
      if (s.path === "/api/generate") expect(body).toMatchObject({ raw: true, options: { num_predict: 64, temperature: 0, top_p: 1, seed: 7 } });
      else expect(body).toMatchObject({ max_tokens: 64, temperature: 0, top_p: 1, seed: 7, stream: true });
    });

    it("reports a log-probability per token (and token ids where the server gives them)", async () => {
      const parts = await collect(s.adapter.doStream(request()));
      const deltas = parts.filter((p): p is Extract<StreamPart, { type: "text-delta" }> => p.type === "text-delta");
      expect(deltas.flatMap((d) => d.logprobs ?? [])).toEqual(tokenize(REPLY).map((_t, i) => fakeLogprob(i)));
      if (s.tokenIds) expect(deltas.flatMap((d) => d.tokens ?? [])).toEqual(tokenize(REPLY).map(fakeTokenId));
    });

    it("stops at max_tokens with finish length; doGenerate gives the same text without streaming", async () => {
      const cut = await collect(s.adapter.doStream(request({ sampling: { max_tokens: 3, temperature: 0, top_p: 1 } })));
      expect(textOf(cut)).toBe(tokenize(REPLY).slice(0, 3).join(""));
      expect(cut.at(-1)).toEqual({ type: "finish", reason: "length" });
      const whole = await s.adapter.doGenerate(request());
      expect(whole).toMatchObject({ text: REPLY, finishReason: "stop", usage: { completion_tokens: tokenize(REPLY).length } });
      expect(sent().stream).toBe(false);
    });

    it("continues from another node's text by sending prompt + prefix, without repeating the prefix", async () => {
      const prefix = tokenize(REPLY).slice(0, 4).join("");
      const parts = await collect(s.adapter.doStream(request({ assistantPrefix: prefix })));
      expect(prefix + textOf(parts)).toBe(REPLY);
      expect(sent().prompt).toBe(PROMPT + prefix);
    });

    it("an error mid-stream is an error part after the text already sent", async () => {
      s.http.setBehaviour({ ...BASE, failAfterTokens: 2 });
      const parts = await collect(s.adapter.doStream(request()));
      expect(textOf(parts)).toBe(tokenize(REPLY).slice(0, 2).join(""));
      expect(parts.some((p) => p.type === "error")).toBe(true);
    });

    it("refuses tools with a raw prompt (bad_request), without calling the server", async () => {
      const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
      const parts = await collect(s.adapter.doStream(request({ sampling: { max_tokens: 8, temperature: 0, top_p: 1, tools } })));
      expect(parts[0]).toMatchObject({ type: "error", code: "bad_request" });
      expect(s.http.requests.filter((r) => r.path === s.path)).toHaveLength(0);
    });
  });
}

function openai(flavour: OpenAIFlavourName, make: (url: string, model: string) => BackendAdapter, model = "Qwen/Qwen2.5-7B") {
  return async (): Promise<Subject> => {
    const fake = await startFakeOpenAICompatible({ flavour, models: [model] });
    return { adapter: make(fake.url, model), model, http: fake.http, path: "/v1/completions", tokenIds: flavour === "llama-server" || flavour === "llama-swap" };
  };
}

rawContract("openai-compatible (generic)", openai("vllm", (baseURL) => createOpenAICompatibleAdapter({ baseURL })));
rawContract("vllm", openai("vllm", (host, model) => createVllmAdapter({ instances: [{ host, model }] })));
rawContract("sglang", openai("sglang", (baseURL) => createSglangAdapter({ baseURL })));
rawContract("max (which cannot continue a chat prefix, but continues a raw prompt)", openai("max", (baseURL) => createMaxAdapter({ baseURL })));
rawContract("llama-server", openai("llama-server", (baseURL) => createLlamaServerAdapter({ baseURL }), "qwen2.5-7b-q4_k_m"));
rawContract("llama-swap", openai("llama-swap", (baseURL) => createLlamaServerAdapter({ baseURL, swap: true }), "qwen2.5-7b"));
rawContract("ollama", async () => {
  const fake = await startFakeOllama({ installed: [{ name: "qwen2.5:7b", sizeBytes: 4_683_087_332 }] });
  return { adapter: createOllamaAdapter({ baseURL: fake.url }), model: "qwen2.5:7b", http: fake.http, path: "/api/generate", tokenIds: false };
});

describe("stage-only: raw prompts", () => {
  it("refuses them, as it refuses every whole-model job", async () => {
    const parts = await collect(createStageOnlyBackend().doStream({ model: "m", messages: [{ role: "user", content: "x" }], rawPrompt: true, sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }));
    expect(parts[0]).toMatchObject({ type: "error" });
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "error" });
  });
});
