import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StreamPart } from "@tessera/protocol";
import { buildLlamaServer, greedyReference, makeTinyModel, startLlamaServer, type RunningLlamaServer, type TinyModelOptions } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, GenerateRequest } from "../../src/backends/adapter.js";
import { createLlamaServerAdapter } from "../../src/backends/llama-server/llama-server-adapter.js";

/**
 * Tessera's llama-server adapter against a REAL llama.cpp llama-server, compiled by the testkit from the llama.cpp
 * sources node-llama-cpp ships (buildLlamaServer: minutes the first time, cached outside the checkout after), on
 * tiny generated models. Without cmake or a C++ compiler the tests skip with a printed notice; under CI=true the
 * build is mandatory. The fakes in the testkit stay the reference for what a fake can stage (errors, drops, pacing);
 * this file checks what only the real server can tell: its wire format as it really is.
 *
 * The last block measures whether the same prompt token ids give the same greedy tokens on this llama-server and on
 * node-llama-cpp's prebuilt (the embedded backend's engine); the figures are in
 * packages/node/src/backends/llama-server/design.md.
 */
let skipReason: string | undefined;
let binaryPath: string | undefined;
let dir: string;
let server: RunningLlamaServer | undefined;
let adapter: BackendAdapter;

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const MESSAGES = [
  { role: "system" as const, content: "Be brief." },
  { role: "user" as const, content: "Tell me about the fox" },
];

beforeAll(async () => {
  const build = await buildLlamaServer();
  if (build.binaryPath === undefined) {
    skipReason = build.reason;
    process.stderr.write(`\n*** llama-server-real.test.ts SKIPPED: ${build.reason} ***\n\n`);
    return;
  }
  binaryPath = build.binaryPath;
  dir = mkdtempSync(join(tmpdir(), "tessera-llama-server-"));
  const modelPath = join(dir, "tiny-chat.gguf");
  await makeTinyModel({ path: modelPath, seed: 3, vocab: "spm" });
  server = await startLlamaServer({ binaryPath, modelPath, logFile: join(dir, "llama-server.log") });
  adapter = createLlamaServerAdapter({ baseURL: server.baseURL });
}, 60 * 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}

function deltas(parts: StreamPart[]): Extract<StreamPart, { type: "text-delta" }>[] {
  return parts.filter((p): p is Extract<StreamPart, { type: "text-delta" }> => p.type === "text-delta");
}

function request(patch: Partial<GenerateRequest> = {}): GenerateRequest {
  return { model: server!.modelId, messages: MESSAGES, sampling: { max_tokens: 24, temperature: 0, top_p: 1 }, ...patch };
}

async function post<T>(base: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

describe("llama-server adapter against a real llama-server", () => {
  it("reports the server healthy and lists the model it serves as loaded", async (ctx) => {
    if (skipReason) return ctx.skip();
    expect(await adapter.health()).toEqual({ ok: true });
    expect(await adapter.listModels()).toEqual([expect.objectContaining({ id: server!.modelId, loaded: true })]);
  });

  it("streams a chat answer as text deltas carrying exactly their token ids and logprobs, then usage, then one finish", async (ctx) => {
    if (skipReason) return ctx.skip();
    const parts = await collect(adapter.doStream(request()));
    const types = parts.map((p) => p.type);
    expect(types.slice(types.findIndex((t) => t !== "text-delta"))).toEqual(["usage", "finish"]);
    expect(parts.find((p) => p.type === "usage")).toMatchObject({ completion_tokens: 24, prompt_tokens: expect.any(Number) });
    const ds = deltas(parts);
    expect(ds.filter((d) => d.tokens).length).toBeGreaterThan(ds.length / 2);
    for (const d of ds) {
      for (const l of d.logprobs ?? []) expect(l).toBeLessThanOrEqual(0);
      if (!d.tokens) continue;
      expect(d.logprobs).toHaveLength(d.tokens.length);
      // Relayed ids are the answer itself: the server turns them back into exactly the text the client saw (a
      // failover continues from them). This model's answer has a lone byte token, which llama-server's stream leaves
      // out: that delta carries no ids rather than wrong ones (map-chunk.ts exactTokenIds).
      const { content } = await post<{ content: string }>(server!.baseURL, "/detokenize", { tokens: d.tokens });
      expect(content).toBe(d.text);
    }
  });

  it("stops at max_tokens with finish reason length and that many tokens", async (ctx) => {
    if (skipReason) return ctx.skip();
    const parts = await collect(adapter.doStream(request({ sampling: { max_tokens: 5, temperature: 0, top_p: 1 } })));
    expect(deltas(parts).flatMap((d) => d.tokens ?? [])).toHaveLength(5);
    expect(parts.find((p) => p.type === "usage")).toMatchObject({ completion_tokens: 5 });
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "length" });
  });

  it("doGenerate gives the same greedy answer as the stream", async (ctx) => {
    if (skipReason) return ctx.skip();
    const streamed = deltas(await collect(adapter.doStream(request()))).map((d) => d.text).join("");
    const whole = await adapter.doGenerate(request());
    expect(whole.text).toBe(streamed);
    expect(whole.usage.completion_tokens).toBe(24);
    expect(whole.finishReason).toBe("length");
  });

  it("a client asking for logprobs gets each token's top alternatives, the greedy choice first", async (ctx) => {
    if (skipReason) return ctx.skip();
    const parts = await collect(adapter.doStream(request({ sampling: { max_tokens: 8, temperature: 0, top_p: 1, logprobs: true, top_logprobs: 5 } })));
    const entries = deltas(parts).flatMap((d) => d.token_logprobs ?? []);
    expect(entries).toHaveLength(8);
    for (const e of entries) {
      expect(e.top_logprobs).toHaveLength(5);
      expect(e.top_logprobs[0]!.token).toBe(e.token);
      expect(e.top_logprobs[0]!.logprob).toBeCloseTo(e.logprob, 5);
    }
  });

  it("stop sequences are the coordinator's to apply: the node's stream is the unstopped greedy answer", async (ctx) => {
    if (skipReason) return ctx.skip();
    const plain = deltas(await collect(adapter.doStream(request()))).map((d) => d.text).join("");
    const word = plain.trim().split(/\s+/)[2] ?? plain.trim().slice(0, 3);
    const stopped = deltas(await collect(adapter.doStream(request({ sampling: { max_tokens: 24, temperature: 0, top_p: 1, stop: [word] } })))).map((d) => d.text).join("");
    // Everything up to and including the stop text arrives, identical, so the cut the coordinator makes is the same on
    // every backend.
    const cut = plain.indexOf(word) + word.length;
    expect(stopped.slice(0, cut)).toBe(plain.slice(0, cut));
  });

  it("runs a raw prompt through /v1/completions with no chat template, token ids on its deltas", async (ctx) => {
    if (skipReason) return ctx.skip();
    const prompt = "Once upon a time there was";
    const parts = await collect(adapter.doStream({ model: server!.modelId, rawPrompt: true, messages: [{ role: "user", content: prompt }], sampling: { max_tokens: 12, temperature: 0, top_p: 1 } }));
    const ds = deltas(parts);
    const tokens = ds.flatMap((d) => d.tokens ?? []);
    expect(tokens).toHaveLength(12);
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "length" });
    // The same prompt through the server's native endpoint, greedy: the raw job ran exactly that prompt, untemplated.
    const native = await post<{ tokens: number[] }>(server!.baseURL, "/completion", { prompt, n_predict: 12, temperature: 0, return_tokens: true, cache_prompt: false });
    expect(tokens).toEqual(native.tokens);
  });

  it("a cancelled stream ends with finish cancelled, and the server then serves the next job in full", async (ctx) => {
    if (skipReason) return ctx.skip();
    const controller = new AbortController();
    const parts: StreamPart[] = [];
    for await (const p of adapter.doStream(request({ signal: controller.signal, sampling: { max_tokens: 400, temperature: 0, top_p: 1 } }))) {
      parts.push(p);
      if (p.type === "text-delta") controller.abort();
    }
    expect(deltas(parts).length).toBeLessThan(400);
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    const next = await collect(adapter.doStream(request({ sampling: { max_tokens: 6, temperature: 0, top_p: 1 } })));
    expect(next.at(-1)).toEqual({ type: "finish", reason: "length" });
    expect(await adapter.health()).toEqual({ ok: true });
  });
});

/**
 * A failover onto llama-server: the job carries the first node's prompt ids and the tokens it streamed, and the server
 * continues. The model is the canonical-failover e2e's (50m, seed 7, ChatML), whose greedy answer has a near tie at
 * token 55 (top-2 log-probability margin 4.6e-3). Evaluating prompt + prefix in one batch moves the log-probabilities
 * by up to 1.7e-2 on this server, enough to flip it (CI did, once); the adapter replays the prefix into the slot one
 * token at a time (prefix-replay.ts), which reproduces the uninterrupted run's numbers exactly, bit for bit.
 */
describe("a continuation on a real llama-server", () => {
  const N = 64;

  it("after 1, 20 or 63 tokens has exactly the log-probabilities and text of the uninterrupted answer, on a fresh server and on one whose slot holds that answer; the answer asked again there is the same", async (ctx) => {
    if (skipReason) return ctx.skip();
    const modelPath = join(dir, "canon-50m.gguf");
    await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm", chatTemplate: CHATML });
    const onServer = async <T>(run: (llamaServer: BackendAdapter, model: string) => Promise<T>): Promise<T> => {
      const own = await startLlamaServer({ binaryPath: binaryPath!, modelPath });
      try {
        return await run(createLlamaServerAdapter({ baseURL: own.baseURL }), own.modelId);
      } finally {
        await own.stop();
      }
    };
    const ask = (model: string, patch: Partial<GenerateRequest>, maxTokens = N): GenerateRequest => ({
      model,
      messages: [{ role: "user", content: "Write about rivers." }],
      sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, logprobs: true, top_logprobs: 1 },
      ...patch,
    });
    const entriesOf = (parts: StreamPart[]) => deltas(parts).flatMap((d) => d.token_logprobs ?? []);
    const continueOn = async (llamaServer: BackendAdapter, model: string, promptTokens: number[], prefix: number[]) =>
      entriesOf(await collect(llamaServer.doStream(ask(model, { promptTokens, assistantPrefixTokens: prefix }, N - prefix.length))));

    const whole = await onServer(async (llamaServer, model) => {
      const parts = await collect(llamaServer.doStream(ask(model, { reportPromptTokens: true })));
      const promptTokens = parts.find((p): p is Extract<StreamPart, { type: "prompt" }> => p.type === "prompt")!.tokens;
      const reference = await greedyReference({ modelPath, messages: [], promptTokens, maxTokens: N });
      expect(deltas(parts).map((d) => d.text).join("")).toBe(reference.text);
      // The slot now holds this very answer: a prompt found whole in the cache must still be evaluated as one batch.
      const warm = await continueOn(llamaServer, model, promptTokens, reference.tokens.slice(0, 20));
      // And a fresh answer to the same prompt, on the slot that holds it, is evaluated afresh too: the same answer.
      const again = entriesOf(await collect(llamaServer.doStream(ask(model, {}))));
      return { promptTokens, reference, entries: entriesOf(parts), warm, again };
    });
    expect(whole.entries).toHaveLength(N);
    const expected = (k: number) => ({ logprobs: whole.entries.slice(k).map((e) => e.logprob), text: whole.entries.slice(k).map((e) => e.token).join("") });
    const got = (entries: typeof whole.entries) => ({ logprobs: entries.map((e) => e.logprob), text: entries.map((e) => e.token).join("") });
    expect(got(whole.warm), "continued after 20 on the warm server").toEqual(expected(20));
    expect(got(whole.again), "the same answer asked again on the warm server").toEqual(expected(0));
    for (const k of [1, 20, N - 1]) {
      const rest = await onServer((llamaServer, model) => continueOn(llamaServer, model, whole.promptTokens, whole.reference.tokens.slice(0, k)));
      expect(got(rest), `continued after ${k} on a fresh server`).toEqual(expected(k));
    }
  }, 10 * 60_000);
});

/**
 * A real llama-server started with `--jinja` whose model has a chat template llama.cpp does not recognise as one that
 * calls tools (a plain ChatML one). Its chat route then fails JSON mode ("Failed to initialize samplers") and ignores
 * `tool_choice: "required"`, answering in prose (seen: 60 tokens of text, finish `length`). The llama-server adapter
 * never uses that route for them: JSON mode and tools run as canonical ids under Tessera's grammar, whatever the
 * template. llama-swap, which cannot render canonically, keeps the chat route, where prose must not pass for an
 * honoured call.
 */
describe("JSON mode and a forced tool call on a real llama-server whose template llama.cpp does not recognise", () => {
  let jinja: RunningLlamaServer | undefined;
  beforeAll(async () => {
    if (skipReason) return;
    const modelPath = join(dir, "tools-50m.gguf");
    await makeTinyModel({ path: modelPath, seed: 5, preset: "50m", vocab: "spm", chatTemplate: CHATML });
    jinja = await startLlamaServer({ binaryPath: binaryPath!, modelPath, args: ["--jinja"], logFile: join(dir, "llama-server-jinja.log") });
  }, 120_000);
  afterAll(async () => {
    await jinja?.stop();
  });

  it("answers JSON mode with JSON that matches its schema, streamed and whole, whatever the template (canonical ids and the grammar)", async (ctx) => {
    if (skipReason) return ctx.skip();
    const llamaServer = createLlamaServerAdapter({ baseURL: jinja!.baseURL });
    const schema = { type: "object", properties: { sunny: { type: "boolean" }, sky: { type: "string", enum: ["clear", "cloudy"] } }, required: ["sunny", "sky"], additionalProperties: false };
    const ask: GenerateRequest = {
      model: jinja!.modelId,
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      sampling: { max_tokens: 96, temperature: 0, top_p: 1, response_format: { type: "json_schema", json_schema: { name: "weather", strict: true, schema } } },
    };
    const streamed = await collect(llamaServer.doStream(ask));
    const whole = await llamaServer.doGenerate(ask);
    for (const text of [deltas(streamed).map((d) => d.text).join(""), whole.text]) {
      const value = JSON.parse(text) as Record<string, unknown>;
      expect(Object.keys(value).sort()).toEqual(["sky", "sunny"]);
      expect(typeof value.sunny).toBe("boolean");
      expect(["clear", "cloudy"]).toContain(value.sky);
    }
    expect(streamed.at(-1)).toEqual({ type: "finish", reason: "stop" });
    expect(whole.finishReason).toBe("stop");
  });

  const tools = [{ type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string", enum: ["Paris", "Oslo"] } }, required: ["city"] } } }];
  const ask = (tool_choice: NonNullable<GenerateRequest["sampling"]["tool_choice"]>, maxTokens = 24): GenerateRequest => ({
    model: jinja!.modelId,
    messages: [{ role: "user", content: "What is the weather in Paris?" }],
    sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1, tools, tool_choice },
  });

  it("makes a forced call, streamed and whole, whatever the template (canonical ids and the grammar)", async (ctx) => {
    if (skipReason) return ctx.skip();
    const llamaServer = createLlamaServerAdapter({ baseURL: jinja!.baseURL });
    for (const choice of ["required", { type: "function", function: { name: "get_weather" } }] as const) {
      const parts = await collect(llamaServer.doStream(ask(choice, 96)));
      const calls = parts.flatMap((p) => (p.type === "tool-calls" ? p.calls : []));
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls) {
        expect(call.function.name).toBe("get_weather");
        expect(["Paris", "Oslo"]).toContain((JSON.parse(call.function.arguments) as { city: string }).city);
      }
      expect(deltas(parts)).toEqual([]);
      expect((await llamaServer.doGenerate(ask(choice, 96))).toolCalls?.length).toBe(calls.length);
    }
  });

  it("on llama-swap's chat route, fails a forced call the server did not make with unsupported_parameter naming tool_choice, and sends none of the prose; unforced tool jobs still answer", async (ctx) => {
    if (skipReason) return ctx.skip();
    // llama-swap in front of this server: no canonical rendering (its /props and /tokenize name no model), the chat route.
    const llamaSwap = createLlamaServerAdapter({ baseURL: jinja!.baseURL, swap: true });
    for (const choice of ["required", { type: "function", function: { name: "get_weather" } }] as const) {
      const parts = await collect(llamaSwap.doStream(ask(choice)));
      expect(parts).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringContaining("--jinja") }]);
      await expect(llamaSwap.doGenerate(ask(choice))).rejects.toMatchObject({ code: "unsupported_parameter", param: "tool_choice" });
    }
    const auto = await collect(llamaSwap.doStream(ask("auto")));
    expect(deltas(auto).length).toBeGreaterThan(0);
    expect(auto.at(-1)).toEqual({ type: "finish", reason: "length" });
  });
});

/**
 * The same GGUF and the same prompt token ids on llama-server (`POST /completion` with `prompt: [ids]`, temperature 0)
 * and on node-llama-cpp's prebuilt (testkit greedyReference with `promptTokens`): the greedy token ids, compared.
 */
describe("greedy identity: llama-server built from node-llama-cpp's sources vs node-llama-cpp's prebuilt", () => {
  const N = 64;
  const cases: Array<{ name: string; model: Omit<TinyModelOptions, "path"> }> = [
    { name: "tiny f16", model: { seed: 11, vocab: "spm", weightType: "f16" } },
    { name: "tiny q8_0", model: { seed: 11, vocab: "spm", weightType: "q8_0" } },
    { name: "50m f16", model: { seed: 7, vocab: "spm", preset: "50m", weightType: "f16" } },
    { name: "50m-shaped q4_k_m (FF 1536)", model: { seed: 7, vocab: "spm", preset: "50m", feedForwardLength: 1536, weightType: "q4_k_m" } },
  ];

  it.for(cases)("$name: the same prompt ids give the same greedy tokens", async ({ name, model }, ctx) => {
    if (skipReason) return ctx.skip();
    const modelPath = join(dir, `${name.replace(/\s+/g, "-")}.gguf`);
    await makeTinyModel({ path: modelPath, ...model });
    const own = await startLlamaServer({ binaryPath: binaryPath!, modelPath });
    try {
      const { tokens: prompt } = await post<{ tokens: number[] }>(own.baseURL, "/tokenize", { content: "The quick brown fox jumps over the lazy dog. Once upon a time", add_special: true });
      const served = await post<{ tokens: number[] }>(own.baseURL, "/completion", { prompt, n_predict: N, temperature: 0, return_tokens: true, cache_prompt: false });
      const reference = await greedyReference({ modelPath, messages: [], promptTokens: prompt, maxTokens: N });
      let same = 0;
      while (same < Math.min(served.tokens.length, reference.tokens.length) && served.tokens[same] === reference.tokens[same]) same++;
      process.stderr.write(`greedy identity ${name}: ${prompt.length} prompt ids, ${same}/${reference.tokens.length} generated tokens identical (llama-server gave ${served.tokens.length})\n`);
      expect(served.tokens).toEqual(reference.tokens);
    } finally {
      await own.stop();
    }
  });
});
