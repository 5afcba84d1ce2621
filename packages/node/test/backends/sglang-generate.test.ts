import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sampling, StreamPart } from "@tessera/protocol";
import { FakeHttpServer, FakeSglangScoring, type IdLevelModel, greedyReference, loadIdLevelModel, makeTinyModel, sendJson } from "@tessera/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, GenerateRequest } from "../../src/backends/adapter.js";
import { createSglangAdapter } from "../../src/backends/sglang/sglang-adapter.js";

/**
 * An SGLang node's answers through SGLang's native streamed `POST /generate` (sglang-generate.ts), so they carry
 * their token ids: against the id-level fake on a REAL model (node-llama-cpp on a testkit GGUF) that streams as SGLang
 * does (cumulative chunks by default, incremental with --incremental-streaming-output, EOS listed last without text),
 * and against chunk layouts written by hand over real HTTP.
 */
const MODEL = "tiny-sglang";
const MESSAGES = [{ role: "user" as const, content: "Tell me about rivers and stones." }];
const GREEDY: Sampling = { max_tokens: 16, temperature: 0, top_p: 1 };
let dir: string;
let modelPath: string;
let eosPath: string;
let model: IdLevelModel;
let eosModel: IdLevelModel;
let fake: FakeSglangScoring;
let eosFake: FakeSglangScoring;

type Answer = { prompt: number[] | undefined; text: string; tokens: number[]; logprobs: number[]; deltas: number; completionTokens: number; finish: string; error?: { code: string; message: string } };

async function streamed(node: BackendAdapter, request: Partial<GenerateRequest> & { sampling?: Sampling }, onDelta?: () => void): Promise<Answer> {
  const answer: Answer = { prompt: undefined, text: "", tokens: [], logprobs: [], deltas: 0, completionTokens: -1, finish: "" };
  for await (const part of node.doStream({ model: MODEL, messages: MESSAGES, sampling: GREEDY, ...request }) as AsyncIterable<StreamPart>) {
    if (part.type === "prompt") answer.prompt = part.tokens;
    if (part.type === "text-delta") {
      answer.text += part.text;
      answer.deltas++;
      answer.tokens.push(...(part.tokens ?? []));
      answer.logprobs.push(...(part.logprobs ?? []));
      onDelta?.();
    }
    if (part.type === "usage") answer.completionTokens = part.completion_tokens;
    if (part.type === "finish") answer.finish = part.reason;
    if (part.type === "error") answer.error = { code: part.code, message: part.message };
  }
  return answer;
}

const lastGenerate = (f: FakeSglangScoring) => f.requests.filter((r) => r.path === "/generate").at(-1)?.body as Record<string, unknown>;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("an SGLang node's answers carry their token ids (/generate, id-level fake on a real model)", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tessera-sglang-generate-"));
    modelPath = join(dir, "tiny.gguf");
    eosPath = join(dir, "eos-heavy.gguf");
    await makeTinyModel({ path: modelPath, seed: 1, vocab: "spm" });
    await makeTinyModel({ path: eosPath, seed: 1, vocab: "spm", eosScale: 2.5 });
    model = await loadIdLevelModel({ modelPath, modelId: MODEL });
    eosModel = await loadIdLevelModel({ modelPath: eosPath, modelId: MODEL });
    fake = await FakeSglangScoring.start({ model });
    eosFake = await FakeSglangScoring.start({ model: eosModel });
  }, 10 * 60_000);

  afterAll(async () => {
    await fake?.close();
    await eosFake?.close();
    await model?.close();
    await eosModel?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    for (const f of [fake, eosFake]) {
      if (!f) continue;
      f.fault = undefined;
      f.incrementalStreamingOutput = false;
      f.holdAfter = undefined;
    }
  });

  it("a chat's first run reports the server's prompt ids, then streams the model's greedy tokens with their ids and logprobs; a streamed answer scores rank 1 on an SGLang reference", async () => {
    const node = createSglangAdapter({ baseURL: fake.url });
    const answer = await streamed(node, { reportPromptTokens: true });
    const reference = await greedyReference({ modelPath, messages: MESSAGES, maxTokens: 16 });
    expect(answer.error).toBeUndefined();
    expect(answer.prompt).toEqual(model.chatTokens(MESSAGES));
    expect(answer).toMatchObject({ tokens: reference.tokens, completionTokens: 16, finish: "length", text: model.detokenize(reference.tokens) });
    expect(answer.logprobs).toHaveLength(16);
    expect(lastGenerate(fake)).toMatchObject({ input_ids: model.chatTokens(MESSAGES), stream: true, return_logprob: true, sampling_params: { max_new_tokens: 16, temperature: 0, top_p: 1 } });

    const reference_ = createSglangAdapter({ baseURL: fake.url, scoring: { eosTokenIds: [model.eosToken] } });
    const scored = await reference_.score!({ model: MODEL, messages: MESSAGES, promptTokens: answer.prompt, outputTokens: answer.tokens });
    expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
    const g = scored.positions.map((p, i) => Math.abs(p.logprob - answer.logprobs[i]!));
    expect(mean(g)).toBeLessThan(0.05);
  });

  it("an answer that stopped on EOS leaves the EOS id (listed by SGLang) out of its ids and its usage, cumulative or incremental chunks alike; EOS ranks first there", async () => {
    const reference = await greedyReference({ modelPath: eosPath, messages: MESSAGES, maxTokens: 96 });
    const node = createSglangAdapter({ baseURL: eosFake.url });
    for (const incremental of [false, true]) {
      eosFake.incrementalStreamingOutput = incremental;
      const answer = await streamed(node, { sampling: { ...GREEDY, max_tokens: 96 } });
      expect(answer.error).toBeUndefined();
      expect(answer.finish).toBe("stop");
      expect(answer.tokens).toEqual(reference.tokens);
      expect(answer.tokens).not.toContain(eosModel.eosToken);
      expect(answer.logprobs).toHaveLength(reference.tokens.length);
      expect(answer.completionTokens).toBe(reference.tokens.length);
      expect(answer.text).toBe(eosModel.detokenize(reference.tokens));
    }
    const scorer = createSglangAdapter({ baseURL: eosFake.url, scoring: { eosTokenIds: [eosModel.eosToken] } });
    const answer = await streamed(node, { sampling: { ...GREEDY, max_tokens: 96 } });
    const scored = await scorer.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
    expect(scored.eos.rank).toBe(1);
    expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
  });

  it("a continuation runs the job's prompt ids plus the prefix's ids, and carries on exactly where the first node stopped", async () => {
    const reference = await greedyReference({ modelPath, messages: MESSAGES, maxTokens: 16 });
    const node = createSglangAdapter({ baseURL: fake.url });
    const prompt = model.chatTokens(MESSAGES);
    const prefix = reference.tokens.slice(0, 5);
    const answer = await streamed(node, { promptTokens: prompt, assistantPrefix: model.detokenize(prefix), assistantPrefixTokens: prefix, sampling: { ...GREEDY, max_tokens: 11 } });
    expect(answer.prompt).toBeUndefined();
    expect(lastGenerate(fake).input_ids).toEqual([...prompt, ...prefix]);
    expect(answer.tokens).toEqual(reference.tokens.slice(5));
  });

  it("a raw prompt is tokenised by SGLang with its special tokens, then generated on those ids; seed goes as sampling_seed", async () => {
    const node = createSglangAdapter({ baseURL: fake.url });
    const raw = "Once upon a time";
    const answer = await streamed(node, { messages: [{ role: "user", content: raw }], rawPrompt: true, sampling: { ...GREEDY, max_tokens: 8, seed: 7 } });
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: raw }], rawPrompt: true, maxTokens: 8 });
    expect(lastGenerate(fake)).toMatchObject({ input_ids: model.tokenize(raw, true), sampling_params: { sampling_seed: 7 } });
    expect(answer.tokens).toEqual(reference.tokens);
  });

  it("a client's top_logprobs become top_logprobs_num with token text; a raw prompt's response_format goes as sampling_params.json_schema (this fake refuses it by name: bad_request)", async () => {
    const node = createSglangAdapter({ baseURL: fake.url });
    const parts: StreamPart[] = [];
    for await (const p of node.doStream({ model: MODEL, messages: MESSAGES, sampling: { ...GREEDY, max_tokens: 4, logprobs: true, top_logprobs: 3 } })) parts.push(p);
    const deltas = parts.filter((p) => p.type === "text-delta");
    const tops = deltas.flatMap((p) => p.token_logprobs ?? []);
    expect(lastGenerate(fake)).toMatchObject({ top_logprobs_num: 3, return_text_in_logprobs: true });
    expect(tops).toHaveLength(4);
    expect(tops.every((t) => t.top_logprobs.length === 3 && t.top_logprobs[0]!.logprob >= t.top_logprobs[2]!.logprob)).toBe(true);
    // Each token's text as SGLang decodes it alone (return_text_in_logprobs); an SPM piece loses its leading space so.
    expect(tops.map((t) => t.token)).toEqual(deltas.flatMap((p) => p.tokens ?? []).map((id) => model.tokenText(id)));

    // Chats with response_format run under Tessera's grammar instead (vllm-sglang-canonical-tools.test.ts).
    const json = await streamed(node, { rawPrompt: true, messages: [{ role: "user", content: "A JSON object:" }], sampling: { ...GREEDY, response_format: { type: "json_object" } } });
    expect(lastGenerate(fake).sampling_params).toMatchObject({ json_schema: JSON.stringify({ type: "object" }) });
    expect(json.error?.code).toBe("bad_request");
    expect(json.error?.message).toContain("json_schema");
  });

  it("cancelling mid-answer ends with usage so far and cancelled, and SGLang sees its client go away", async () => {
    fake.holdAfter = 3;
    const node = createSglangAdapter({ baseURL: fake.url });
    const controller = new AbortController();
    const answer = await streamed(node, { signal: controller.signal }, () => controller.abort());
    expect(answer.finish).toBe("cancelled");
    expect(answer.deltas).toBeGreaterThanOrEqual(1);
    expect(answer.completionTokens).toBeGreaterThanOrEqual(1);
    await expect.poll(() => fake.disconnects).toBe(1);
  });

  it("a chunk without output_token_logprobs, or SGLang's {error} chunk mid-stream, is a clear internal_error", async () => {
    const node = createSglangAdapter({ baseURL: fake.url });
    fake.fault = "chunk-without-logprobs";
    const malformed = await streamed(node, {});
    expect(malformed.error?.code).toBe("internal_error");
    expect(malformed.error?.message).toContain("output_token_logprobs");
    expect(malformed.finish).toBe("");
    fake.fault = "error-mid-stream";
    const failed = await streamed(node, {});
    expect(failed.error).toEqual({ code: "internal_error", message: "sglang: fake SGLang: the scheduler failed mid-stream" });
  });
});

describe("SGLang /generate chunk layouts (written by hand over real HTTP)", () => {
  let server: FakeHttpServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  type Chunk = { text: string; ids: number[]; completion: number; finish?: Record<string, unknown> };
  async function sglangWriting(chunks: Chunk[]): Promise<Answer> {
    server = new FakeHttpServer((method, path) => {
      if (method === "POST" && path === "/generate") {
        return (_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" });
          for (const c of chunks) {
            const meta = { id: "r", finish_reason: c.finish ?? null, prompt_tokens: 5, completion_tokens: c.completion, cached_tokens: 0, output_token_logprobs: c.ids.map((t) => [-0.5, t, null]) };
            res.write(`data: ${JSON.stringify({ text: c.text, output_ids: c.ids, meta_info: meta })}\n\n`);
          }
          res.end("data: [DONE]\n\n");
        };
      }
      if (method === "GET" && path === "/v1/models") return (_req, res) => sendJson(res, 200, { object: "list", data: [{ id: MODEL, object: "model" }] });
      return undefined;
    });
    await server.listen();
    return streamed(createSglangAdapter({ baseURL: server.url }), { promptTokens: [1, 2, 3, 4, 5] });
  }

  it("cumulative chunks (the default), several tokens a chunk, EOS last: deltas of new text, EOS out of ids and usage", async () => {
    const out = await sglangWriting([
      { text: "Hi", ids: [10], completion: 1 },
      { text: "Hi there", ids: [10, 11, 12], completion: 3 },
      { text: "Hi there", ids: [10, 11, 12, 2], completion: 4, finish: { type: "stop", matched: 2 } },
    ]);
    expect(out).toMatchObject({ text: "Hi there", tokens: [10, 11, 12], completionTokens: 3, finish: "stop", deltas: 2 });
  });

  it("incremental chunks: a token held back mid-character goes with the next text; length keeps every id", async () => {
    const out = await sglangWriting([
      { text: "", ids: [200], completion: 1 },
      { text: "é", ids: [201], completion: 2 },
      { text: "x", ids: [12], completion: 3, finish: { type: "length", length: 3 } },
    ]);
    expect(out).toMatchObject({ text: "éx", tokens: [200, 201, 12], completionTokens: 3, finish: "length" });
  });

  it("a matched stop string: the ids of text SGLang trimmed are not relayed, and usage stays as sent (only an integer match is a token to take off)", async () => {
    const out = await sglangWriting([
      { text: "Hi", ids: [10], completion: 1 },
      { text: "Hi", ids: [10, 11], completion: 2, finish: { type: "stop", matched: "END" } },
    ]);
    expect(out).toMatchObject({ text: "Hi", tokens: [10], completionTokens: 2, finish: "stop" });
  });

  it("SGLang aborting the request is an error naming its message; counts that do not add up are a malformed chunk", async () => {
    const aborted = await sglangWriting([{ text: "Hi", ids: [10], completion: 1, finish: { type: "abort", message: "Abort by the scheduler" } }]);
    expect(aborted.error).toEqual({ code: "internal_error", message: "sglang: SGLang aborted the request (Abort by the scheduler)" });
    const bad = await sglangWriting([{ text: "Hi", ids: [10, 11], completion: 5 }]);
    expect(bad.error?.code).toBe("internal_error");
    expect(bad.error?.message).toContain("output_token_logprobs");
  });
});
