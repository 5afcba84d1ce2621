import type { StreamPart } from "@tessera/protocol";
import { type FakeBehaviour, type FakeOllama, type FakeOllamaModel, fakeLogprob, startFakeOllama, tokenize } from "@tessera/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../src/backends/adapter.js";
import { type OllamaAdapter, createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";
import { renderChat } from "../../src/prompt/index.js";

/**
 * Chats on Ollama run the job's canonical prompt (issue 17 §0; backends/design.md "Canonical prompt"): the model's
 * Jinja template from `/api/show`, rendered by the renderer every node uses, sent to `/api/generate` with `raw: true`.
 * Against the fake Ollama, which speaks the real wire format and records each request body.
 */
const REPLY = "Paris is the capital of France.";
const BASE: FakeBehaviour = { tokensPerSecond: 0, responseDelayMs: 0, failAfterTokens: undefined, dropAfterTokens: undefined, hold: undefined, reply: REPLY, toolArguments: '{"city":"Paris"}' };

const CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
/** Llama-2 style: BOS written as template text, as the GGUFs of that family do. */
const LLAMA2 = "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}";
const SPM_VOCAB = { tokens: ["<unk>", "<s>", "</s>", "▁a", "▁b", "▁c", "▁d"], bosId: 1, eosId: 2, tokenizerModel: "llama" };

const MODELS: FakeOllamaModel[] = [
  { name: "chatml:1b", sizeBytes: 1, chatTemplate: CHATML },
  { name: "llama2:7b", sizeBytes: 1, chatTemplate: LLAMA2, vocabulary: SPM_VOCAB },
  { name: "llama2-nobos:7b", sizeBytes: 1, chatTemplate: LLAMA2, vocabulary: { ...SPM_VOCAB, addBos: false } },
  { name: "classic:7b", sizeBytes: 1 },
  { name: "broken:1b", sizeBytes: 1, chatTemplate: "{% for m in messages %}{{ m.content }" },
  { name: "raising:1b", sizeBytes: 1, chatTemplate: "{% if messages[0].role != 'system' %}{{ raise_exception('a system message comes first') }}{% endif %}" },
];

const MESSAGES: GenerateRequest["messages"] = [
  { role: "system", content: "Answer briefly." },
  { role: "user", content: "Capital of France?" },
];
const CHATML_TEXT = "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n";

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
const textOf = (parts: StreamPart[]) => parts.map((p) => (p.type === "text-delta" ? p.text : "")).join("");
const errorOf = (parts: StreamPart[]) => parts.find((p): p is Extract<StreamPart, { type: "error" }> => p.type === "error");

describe("ollama: chats run the canonical prompt in raw mode", () => {
  let fake: FakeOllama;
  let adapter: OllamaAdapter;
  const request = (patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
    model: "chatml:1b",
    messages: MESSAGES,
    sampling: { max_tokens: 64, temperature: 0, top_p: 1, seed: 7 },
    ...patch,
  });
  const paths = () => fake.http.requests.map((r) => r.path);
  const bodyAt = (path: string) => fake.http.requests.filter((r) => r.path === path).at(-1)?.body as Record<string, unknown> | undefined;

  beforeAll(async () => {
    fake = await startFakeOllama({ installed: MODELS });
  });
  afterAll(async () => {
    await fake.http.close();
  });
  beforeEach(() => {
    fake.http.setBehaviour(BASE);
    fake.http.requests.length = 0;
    adapter = createOllamaAdapter({ baseURL: fake.url, keepAlive: "10m" });
  });

  it("sends a chat to /api/generate with raw:true and exactly the canonical text, never to /api/chat", async () => {
    const parts = await collect(adapter.doStream(request()));
    expect(textOf(parts)).toBe(REPLY);
    // Brief first; the full vocabulary (BOS/EOS text) only because the template is Jinja.
    expect(paths()).toEqual(["/api/show", "/api/show", "/api/generate"]);
    expect(fake.http.requests.filter((r) => r.path === "/api/show").map((r) => r.body)).toEqual([
      { model: "chatml:1b", verbose: false },
      { model: "chatml:1b", verbose: true },
    ]);
    const body = bodyAt("/api/generate")!;
    expect(body.prompt).toBe(CHATML_TEXT);
    expect(body).toMatchObject({ model: "chatml:1b", raw: true, stream: true, keep_alive: "10m", logprobs: true, options: { num_predict: 64, temperature: 0, top_p: 1, seed: 7 } });
    // The same text the embedded engine and llama-server render from this template (node/src/prompt/).
    expect(body.prompt).toBe(renderChat({ template: CHATML, bosToken: "<|endoftext|>", eosToken: "<|im_end|>", addBos: false }, MESSAGES).text);
    const deltas = parts.filter((p): p is Extract<StreamPart, { type: "text-delta" }> => p.type === "text-delta");
    expect(deltas.flatMap((d) => d.logprobs ?? [])).toEqual(tokenize(REPLY).map((_t, i) => fakeLogprob(i)));
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
  });

  it("doGenerate sends the same raw body (stream:false) and returns the whole answer", async () => {
    const result = await adapter.doGenerate(request());
    expect(result).toMatchObject({ text: REPLY, finishReason: "stop", usage: { completion_tokens: tokenize(REPLY).length } });
    expect(bodyAt("/api/generate")).toMatchObject({ prompt: CHATML_TEXT, raw: true, stream: false });
  });

  it("reads a model's template once (a brief /api/show, then the verbose one for a Jinja template), not per request", async () => {
    await collect(adapter.doStream(request()));
    await collect(adapter.doStream(request({ messages: [{ role: "user", content: "Again?" }] })));
    expect(paths().filter((p) => p === "/api/show")).toHaveLength(2);
    expect(bodyAt("/api/generate")!.prompt).toBe("<|im_start|>user\nAgain?<|im_end|>\n<|im_start|>assistant\n");
  });

  it("a continuation appends the prefix to the canonical text exactly, and given prompt ids are accepted", async () => {
    const prefix = "Paris is the";
    const parts = await collect(adapter.doStream(request({ assistantPrefix: prefix, assistantPrefixTokens: [4, 5, 6], promptTokens: [2, 4, 5, 3, 2, 6, 7] })));
    expect(bodyAt("/api/generate")!.prompt).toBe(CHATML_TEXT + prefix);
    expect(textOf(parts)).toBe(REPLY.slice(prefix.length));
    expect(paths()).not.toContain("/api/chat");
  });

  it("a template writing BOS as text loses it where the vocabulary adds BOS (Ollama's raw tokeniser adds it), keeps it where not", async () => {
    const messages: GenerateRequest["messages"] = [{ role: "user", content: "Hi" }];
    await collect(adapter.doStream(request({ model: "llama2:7b", messages })));
    expect(bodyAt("/api/generate")!.prompt).toBe("[INST] Hi [/INST]");
    await collect(adapter.doStream(request({ model: "llama2-nobos:7b", messages })));
    expect(bodyAt("/api/generate")!.prompt).toBe("<s>[INST] Hi [/INST]");
  });

  it("prompt ids outside the model's vocabulary are refused by name before any generation", async () => {
    const parts = await collect(adapter.doStream(request({ model: "llama2:7b", promptTokens: [1, 3, 7] })));
    expect(errorOf(parts)).toMatchObject({ code: "bad_request", message: expect.stringContaining("prompt_tokens") });
    expect(paths()).not.toContain("/api/generate");
  });

  it("a model with only Ollama's own Go template (and no readable GGUF) keeps /api/chat; given prompt ids are refused, not ignored", async () => {
    const parts = await collect(adapter.doStream(request({ model: "classic:7b" })));
    expect(textOf(parts)).toBe(REPLY);
    expect(paths()).toEqual(["/api/show", "/api/chat"]);
    expect(bodyAt("/api/show")).toEqual({ model: "classic:7b", verbose: false });
    fake.http.requests.length = 0;
    // unsupported_parameter before any token: the coordinator moves the job to a node that can run the prompt.
    const refused = await collect(adapter.doStream(request({ model: "classic:7b", promptTokens: [1, 2, 3], assistantPrefix: "Paris" })));
    expect(errorOf(refused)).toMatchObject({ code: "unsupported_parameter", message: expect.stringContaining("prompt_tokens") });
    expect(errorOf(refused)!.message).toMatch(/Go template/);
    expect(paths()).toEqual([]);
    await expect(adapter.doGenerate(request({ model: "classic:7b", promptTokens: [1, 2, 3] }))).rejects.toMatchObject({ code: "unsupported_parameter", param: "prompt_tokens" });
  });

  it("a template that does not parse, or raises for these messages, is a bad_request naming the template", async () => {
    const broken = errorOf(await collect(adapter.doStream(request({ model: "broken:1b" }))));
    expect(broken).toMatchObject({ code: "bad_request" });
    expect(broken!.message).toMatch(/chat template does not parse/);
    const raising = errorOf(await collect(adapter.doStream(request({ model: "raising:1b", messages: [{ role: "user", content: "Hi" }] }))));
    expect(raising).toMatchObject({ code: "bad_request" });
    expect(raising!.message).toMatch(/chat template refused these messages/);
    expect(paths()).not.toContain("/api/generate");
    expect(paths()).not.toContain("/api/chat");
  });

  it("tools and response_format keep /api/chat (Ollama renders tools and compiles format there); prompt ids with them are declined (another node runs them)", async () => {
    const tools = [{ type: "function" as const, function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const parts = await collect(adapter.doStream(request({ sampling: { max_tokens: 64, temperature: 0, top_p: 1, tools } })));
    expect(parts.find((p) => p.type === "tool-calls")).toBeDefined();
    expect(bodyAt("/api/chat")).toMatchObject({ tools: [{ function: { name: "weather" } }] });
    await collect(adapter.doStream(request({ sampling: { max_tokens: 64, temperature: 0, top_p: 1, response_format: { type: "json_object" } } })));
    expect(bodyAt("/api/chat")).toMatchObject({ format: "json" });
    expect(paths()).not.toContain("/api/generate");
    const refused = await collect(adapter.doStream(request({ promptTokens: [1, 2], sampling: { max_tokens: 64, temperature: 0, top_p: 1, tools } })));
    expect(errorOf(refused)).toMatchObject({ code: "unsupported_parameter", message: expect.stringContaining("prompt_tokens") });
  });

  it("raw prompts go to /api/generate as before, without reading the template", async () => {
    await collect(adapter.doStream(request({ rawPrompt: true, messages: [{ role: "user", content: "Once upon" }] })));
    expect(paths()).toEqual(["/api/generate"]);
    expect(bodyAt("/api/generate")).toMatchObject({ prompt: "Once upon", raw: true });
  });

  it("an unknown model is model_not_found (from /api/show); a failed read is not remembered", async () => {
    expect(errorOf(await collect(adapter.doStream(request({ model: "nope:1b" }))))).toMatchObject({ code: "model_not_found" });
    fake.http.goDown();
    expect(errorOf(await collect(adapter.doStream(request())))).toMatchObject({ code: "no_capacity" });
    fake.http.comeBack();
    expect(textOf(await collect(adapter.doStream(request())))).toBe(REPLY);
    expect(bodyAt("/api/generate")!.prompt).toBe(CHATML_TEXT);
  });

  it("a pull forgets what /api/show said (the model may have changed under its name)", async () => {
    await collect(adapter.doStream(request()));
    await adapter.pull("chatml:1b", () => {});
    await collect(adapter.doStream(request()));
    expect(paths().filter((p) => p === "/api/show")).toHaveLength(4);
  });
});
