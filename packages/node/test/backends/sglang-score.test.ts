import { TesseraError } from "@tessera/protocol";
import { FakeSglangScoring, greedyReference } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, ScoreRequest } from "../../src/backends/adapter.js";
import { createBackendAdapter } from "../../src/backends/create-backend-adapter.js";
import { createSglangAdapter } from "../../src/backends/sglang/sglang-adapter.js";
import { PromptMismatchError } from "../../src/prompt/prompt-tokens.js";
import { logprobGaps, mean } from "./logprob-gaps.js";
import { type ReferenceScoringFixture, startReferenceScoringFixture } from "./reference-scoring-fixture.js";

/**
 * An SGLang node as a spot-check reference (sglang-score.ts), against an id-level fake that speaks SGLang's wire
 * format for /generate input_token_logprobs + input_top_logprobs, chat completions' return_prompt_token_ids and
 * /v1/tokenize, backed by a REAL model (node-llama-cpp on a testkit GGUF): honest greedy tokens score as the model's
 * first choice with the embedded engine's log-probabilities, other weights' tokens do not (rank 21 outside the top 20,
 * with the exact log-probability), EOS is judged where an answer stopped, and every bad answer is a clear, coded error.
 */
const MODEL = "tiny-sglang";
const MESSAGES = [{ role: "user" as const, content: "Tell me about rivers and stones." }];
let fixture: ReferenceScoringFixture<FakeSglangScoring>;
let adapter: BackendAdapter;

const generates = (f: FakeSglangScoring) => f.requests.filter((r) => r.path === "/generate").length;

describe("SGLang as a spot-check reference (id-level fake on a real model)", () => {
  beforeAll(async () => {
    fixture = await startReferenceScoringFixture({ modelId: MODEL, tmpPrefix: "tessera-sglang-score-", startFake: (model) => FakeSglangScoring.start({ model }) });
    adapter = createSglangAdapter({ baseURL: fixture.fake.url, scoring: { eosTokenIds: [fixture.model.eosToken] } });
  }, 10 * 60_000);

  afterAll(async () => {
    await fixture?.close();
  });

  it("announces its models as able to score only when scoring is configured, and needs the EOS ids for it", async () => {
    await expect(adapter.listModels()).resolves.toEqual([expect.objectContaining({ id: MODEL, scoring: true })]);
    expect(adapter.score).toBeDefined();
    const plain = createSglangAdapter({ baseURL: fixture.fake.url });
    const [listed] = await plain.listModels();
    expect(listed).toMatchObject({ id: MODEL });
    expect(listed).not.toHaveProperty("scoring");
    expect(plain.score).toBeUndefined();
    // SGLang names no EOS ids itself: scoring without them is refused when the adapter is made, naming the setting.
    expect(() => createSglangAdapter({ baseURL: fixture.fake.url, scoring: { eosTokenIds: [] } })).toThrow(expect.objectContaining({ code: "bad_request", param: "score_eos_token_ids" }));
    expect(() => createBackendAdapter({ kind: "sglang", baseURL: fixture.fake.url, referenceScoring: { eosTokenIds: [] } })).toThrow(/--score-eos-token-ids/);
    const viaConfig = createBackendAdapter({ kind: "sglang", baseURL: fixture.fake.url, referenceScoring: { eosTokenIds: [fixture.model.eosToken] } })!;
    await expect(viaConfig.listModels()).resolves.toEqual([expect.objectContaining({ scoring: true })]);
  });

  it("scores an honest greedy answer as the model's first choice everywhere, with the embedded engine's log-probabilities, in one /generate", async () => {
    const answer = await greedyReference({ modelPath: fixture.modelPath, messages: MESSAGES, maxTokens: 16 });
    expect(answer.tokens).toHaveLength(16);
    const before = generates(fixture.fake);
    const request: ScoreRequest = { model: MODEL, messages: MESSAGES, outputTokens: answer.tokens };
    const scored = await adapter.score!(request);
    expect(generates(fixture.fake) - before).toBe(1);
    expect(scored.promptTokens).toBe(answer.promptTokens);
    expect(scored.positions.map((p) => p.token)).toEqual(answer.tokens);
    expect(scored.positions.map((p) => p.rank)).toEqual(answer.tokens.map(() => 1));
    for (const p of scored.positions) expect(p.topMass).toBeGreaterThanOrEqual(Math.exp(p.logprob) - 1e-9);
    const viaEmbedded = await fixture.embedded.score!(request);
    const g = logprobGaps(scored, viaEmbedded);
    process.stdout.write(`SGLang (fake) vs embedded scoring, 16 honest positions: mean |Δ logprob| ${mean(g).toExponential(2)}, max ${Math.max(...g).toExponential(2)}\n`);
    expect(mean(g)).toBeLessThan(0.05); // trust design: maxMeanLogprobGap
    const sent = fixture.fake.requests.filter((r) => r.path === "/generate").at(-1)!.body as Record<string, unknown>;
    expect(sent).toMatchObject({ return_logprob: true, top_logprobs_num: 20, logprob_start_len: answer.promptTokens - 1, sampling_params: { max_new_tokens: 1, temperature: 0 } });
    expect((sent.input_ids as number[]).at(-1)).toBe(fixture.model.eosToken);
  });

  it("ranks another model's answer mostly below first: 21 outside the top 20, with the exact log-probability", async () => {
    const other = await greedyReference({ modelPath: fixture.otherPath, messages: MESSAGES, maxTokens: 16 });
    const request: ScoreRequest = { model: MODEL, messages: MESSAGES, outputTokens: other.tokens };
    const scored = await adapter.score!(request);
    const first = scored.positions.filter((p) => p.rank === 1).length;
    process.stdout.write(`SGLang reference: other weights' tokens ranked first at ${first}/16 positions\n`);
    expect(first).toBeLessThan(8);
    const viaEmbedded = await fixture.embedded.score!(request);
    expect(scored.positions.map((p) => p.rank)).toEqual(viaEmbedded.positions.map((p) => p.rank));
    expect(mean(logprobGaps(scored, viaEmbedded))).toBeLessThan(0.05);
  });

  it("scores a raw prompt as the completion route tokenises it (BOS added), like the embedded engine", async () => {
    const prompt = "Once upon a time by the river";
    const answer = await greedyReference({ modelPath: fixture.modelPath, messages: [{ role: "user", content: prompt }], rawPrompt: true, maxTokens: 12 });
    const request: ScoreRequest = { model: MODEL, messages: [{ role: "user", content: prompt }], rawPrompt: true, outputTokens: answer.tokens };
    const scored = await adapter.score!(request);
    expect(scored.promptTokens).toBe(answer.promptTokens);
    expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
    expect(mean(logprobGaps(scored, await fixture.embedded.score!(request)))).toBeLessThan(0.05);
  });

  it("judges EOS where an answer stopped: first after an honest stop, not first where the same answer is cut", async () => {
    const eosAdapter = createSglangAdapter({ baseURL: fixture.eosFake.url, scoring: { eosTokenIds: [fixture.eosModel.eosToken] } });
    const answer = await greedyReference({ modelPath: fixture.eosPath, messages: MESSAGES, maxTokens: 96 });
    expect(answer.tokens.length, "the EOS-heavy model stops on its own").toBeLessThan(96);
    const stopped = await eosAdapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
    expect(stopped.eos.rank).toBe(1);
    const cut = await eosAdapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens.slice(0, -1) });
    expect(cut.eos.rank).toBeGreaterThan(1);
    process.stdout.write(`SGLang reference, EOS after ${answer.tokens.length} tokens (a stop): rank ${stopped.eos.rank}, logprob ${stopped.eos.logprob.toFixed(3)}; one token earlier: rank ${cut.eos.rank}, logprob ${cut.eos.logprob.toFixed(3)}\n`);
  });

  it("with several EOS ids, reports the best ranked of them", async () => {
    const eosAdapter = createSglangAdapter({ baseURL: fixture.eosFake.url, scoring: { eosTokenIds: [5000, fixture.eosModel.eosToken] } });
    const answer = await greedyReference({ modelPath: fixture.eosPath, messages: MESSAGES, maxTokens: 96 });
    const scored = await eosAdapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
    expect(scored.eos.rank).toBe(1);
  });

  it("refuses to score after prompt ids other than its own rendering: prompt_mismatch, before any scoring", async () => {
    const before = generates(fixture.fake);
    const error = await adapter.score!({ model: MODEL, messages: MESSAGES, promptTokens: [1, 2, 3], outputTokens: [100] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PromptMismatchError);
    expect(generates(fixture.fake)).toBe(before);
  });

  it("an SGLang that returns no prompt_token_ids cannot score chats: unsupported_parameter naming the field", async () => {
    fixture.fake.fault = "no-prompt-token-ids";
    try {
      const error = await adapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: [100] }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "unsupported_parameter", param: "return_prompt_token_ids", message: expect.stringContaining("0.5.13") });
    } finally {
      fixture.fake.fault = undefined;
    }
  });

  it.each([
    ["no-input-logprobs", "input_token_logprobs", "is missing"],
    ["unpadded-input-logprobs", "input_token_logprobs", "entries for the"],
  ] as const)("a /generate answer with %s is an internal_error naming SGLang and the field", async (fault, field, detail) => {
    fixture.fake.fault = fault;
    try {
      const error = await adapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: [100, 200] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TesseraError);
      expect(error).toMatchObject({ code: "internal_error", param: field });
      expect((error as Error).message).toMatch(new RegExp(`^sglang: malformed ${field}`));
      expect((error as Error).message).toContain(detail);
    } finally {
      fixture.fake.fault = undefined;
    }
  });

  it("entries naming other tokens than the ones sent are malformed, not scored", async () => {
    // A proxy that rewrote the ids: answered for [..., 100, 200] while the scorer sent [..., 100, 300].
    const real = fixture.fake.url;
    const rewriting: typeof fetch = async (url, init) => {
      const body = JSON.parse(String(init?.body)) as { input_ids?: number[] };
      if (String(url).endsWith("/generate") && body.input_ids) body.input_ids[body.input_ids.length - 2] = 200;
      return fetch(url, { ...init, body: JSON.stringify(body) });
    };
    const proxied = createSglangAdapter({ baseURL: real, fetch: rewriting, scoring: { eosTokenIds: [fixture.model.eosToken] } });
    const error = await proxied.score!({ model: MODEL, messages: MESSAGES, outputTokens: [100, 300] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "internal_error", param: "input_token_logprobs", message: expect.stringContaining("but 300 was sent there") });
  });
});
