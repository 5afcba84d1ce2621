import { type StreamPart, TesseraError } from "@tessera/protocol";
import { FakeVllmScoring, greedyReference, loadIdLevelModel } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, ScoreRequest } from "../../src/backends/adapter.js";
import { MAX_SCORED_POSITIONS } from "../../src/backends/openai-compatible/score-http.js";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";
import { PromptMismatchError } from "../../src/prompt/prompt-tokens.js";
import { logprobGaps, mean } from "./logprob-gaps.js";
import { type ReferenceScoringFixture, startReferenceScoringFixture } from "./reference-scoring-fixture.js";

/**
 * A vLLM node as a spot-check reference (vllm-score.ts), against an id-level fake that speaks vLLM's wire format for
 * /v1/completions prompt_logprobs, /tokenize and /tokenizer_info and is backed by a REAL model (node-llama-cpp on a
 * testkit GGUF): honest greedy tokens score as the model's first choice with the embedded engine's log-probabilities,
 * other weights' tokens do not, EOS is judged where an answer stopped, and every bad answer is a clear, coded error.
 */
const MODEL = "tiny-vllm";
const MESSAGES = [{ role: "user" as const, content: "Tell me about rivers and stones." }];
let fixture: ReferenceScoringFixture<FakeVllmScoring>;
let adapter: BackendAdapter;

const completions = (f: FakeVllmScoring) => f.requests.filter((r) => r.path === "/v1/completions").length;

/** A node's streamed answer as the coordinator sees it: token ids, their log-probabilities, usage and finish. */
async function streamed(node: BackendAdapter, maxTokens: number) {
  const answer = { tokens: [] as number[], logprobs: [] as number[], completionTokens: -1, finish: "" };
  for await (const part of node.doStream({ model: MODEL, messages: MESSAGES, sampling: { max_tokens: maxTokens, temperature: 0, top_p: 1 } }) as AsyncIterable<StreamPart>) {
    if (part.type === "text-delta") {
      answer.tokens.push(...(part.tokens ?? []));
      answer.logprobs.push(...(part.logprobs ?? []));
    }
    if (part.type === "usage") answer.completionTokens = part.completion_tokens;
    if (part.type === "finish") answer.finish = part.reason;
    if (part.type === "error") throw new Error(part.message);
  }
  return answer;
}

describe("vLLM as a spot-check reference (id-level fake on a real model)", () => {
  beforeAll(async () => {
    fixture = await startReferenceScoringFixture({ modelId: MODEL, tmpPrefix: "tessera-vllm-score-", startFake: (model) => FakeVllmScoring.start({ model }) });
    adapter = createVllmAdapter({ instances: [{ host: fixture.fake.url }], scoring: {} });
  }, 10 * 60_000);

  afterAll(async () => {
    await fixture?.close();
  });

  it("announces its models as able to score only when scoring is configured", async () => {
    await expect(adapter.listModels()).resolves.toEqual([expect.objectContaining({ id: MODEL, scoring: true })]);
    expect(adapter.score).toBeDefined();
    const plain = createVllmAdapter({ instances: [{ host: fixture.fake.url }] });
    const [listed] = await plain.listModels();
    expect(listed).toMatchObject({ id: MODEL });
    expect(listed).not.toHaveProperty("scoring");
    expect(plain.score).toBeUndefined();
  });

  it("scores an honest greedy answer as the model's first choice everywhere, with the embedded engine's log-probabilities, in one completion", async () => {
    const answer = await greedyReference({ modelPath: fixture.modelPath, messages: MESSAGES, maxTokens: 16 });
    expect(answer.tokens).toHaveLength(16);
    const before = completions(fixture.fake);
    const request: ScoreRequest = { model: MODEL, messages: MESSAGES, outputTokens: answer.tokens };
    const scored = await adapter.score!(request);
    expect(completions(fixture.fake) - before).toBe(1);
    expect(scored.promptTokens).toBe(answer.promptTokens);
    expect(scored.positions.map((p) => p.token)).toEqual(answer.tokens);
    expect(scored.positions.map((p) => p.rank)).toEqual(answer.tokens.map(() => 1));
    for (const p of scored.positions) expect(p.topMass).toBeGreaterThanOrEqual(Math.exp(p.logprob) - 1e-9);
    const viaEmbedded = await fixture.embedded.score!(request);
    const g = logprobGaps(scored, viaEmbedded);
    process.stdout.write(`vLLM (fake) vs embedded scoring, 16 honest positions: mean |Δ logprob| ${mean(g).toExponential(2)}, max ${Math.max(...g).toExponential(2)}\n`);
    expect(mean(g)).toBeLessThan(0.05); // trust design: maxMeanLogprobGap
    expect(Math.abs(scored.eos.logprob - viaEmbedded.eos.logprob)).toBeLessThan(0.05);
  });

  it("an honest vLLM node's streamed answer carries its token ids, and a vLLM reference scores them first everywhere, within the node's own log-probabilities", async () => {
    const node = createVllmAdapter({ instances: [{ host: fixture.fake.url }] });
    const answer = await streamed(node, 16);
    expect(fixture.fake.requests.filter((r) => r.path === "/v1/chat/completions").at(-1)?.body).toMatchObject({ return_token_ids: true, logprobs: true });
    const reference = await greedyReference({ modelPath: fixture.modelPath, messages: MESSAGES, maxTokens: 16 });
    expect(answer).toMatchObject({ tokens: reference.tokens, completionTokens: 16, finish: "length" });
    expect(answer.logprobs).toHaveLength(16);
    const scored = await adapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
    expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
    const g = scored.positions.map((p, i) => Math.abs(p.logprob - answer.logprobs[i]!));
    process.stdout.write(`vLLM node (fake) streamed logprobs vs vLLM reference scoring, 16 positions: mean |Δ| ${mean(g).toExponential(2)}, max ${Math.max(...g).toExponential(2)}\n`);
    expect(mean(g)).toBeLessThan(0.05);
  });

  it("a vLLM node's answer that stopped on EOS leaves the EOS id out of its tokens and its usage, and the reference finds EOS first there", async () => {
    const node = createVllmAdapter({ instances: [{ host: fixture.eosFake.url }] });
    const answer = await streamed(node, 96);
    const reference = await greedyReference({ modelPath: fixture.eosPath, messages: MESSAGES, maxTokens: 96 });
    expect(answer.finish).toBe("stop");
    expect(answer.tokens).toEqual(reference.tokens);
    expect(answer.completionTokens).toBe(reference.tokens.length);
    const eosAdapter = createVllmAdapter({ instances: [{ host: fixture.eosFake.url }], scoring: {} });
    const scored = await eosAdapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
    expect(scored.eos.rank).toBe(1);
    expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
  });

  it("ranks another model's answer mostly below first, with exact ranks beyond 20", async () => {
    const other = await greedyReference({ modelPath: fixture.otherPath, messages: MESSAGES, maxTokens: 16 });
    const request: ScoreRequest = { model: MODEL, messages: MESSAGES, outputTokens: other.tokens };
    const scored = await adapter.score!(request);
    const first = scored.positions.filter((p) => p.rank === 1).length;
    const outside = scored.positions.filter((p) => p.rank > 20);
    process.stdout.write(`vLLM reference: other weights' tokens ranked first at ${first}/16 positions, outside the top 20 at ${outside.length}/16 (ranks ${outside.map((p) => p.rank).join(", ")})\n`);
    expect(first).toBeLessThan(8);
    // vLLM reports the exact vocabulary rank; the embedded engine says 21 for anything outside the top 20.
    const viaEmbedded = await fixture.embedded.score!(request);
    expect(scored.positions.map((p) => Math.min(p.rank, 21))).toEqual(viaEmbedded.positions.map((p) => p.rank));
    expect(mean(logprobGaps(scored, viaEmbedded))).toBeLessThan(0.05);
  });

  it("scores a raw prompt as /v1/completions tokenises it (BOS added), like the embedded engine", async () => {
    const prompt = "Once upon a time by the river";
    const answer = await greedyReference({ modelPath: fixture.modelPath, messages: [{ role: "user", content: prompt }], rawPrompt: true, maxTokens: 12 });
    const request: ScoreRequest = { model: MODEL, messages: [{ role: "user", content: prompt }], rawPrompt: true, outputTokens: answer.tokens };
    const scored = await adapter.score!(request);
    expect(scored.promptTokens).toBe(answer.promptTokens);
    expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
    expect(mean(logprobGaps(scored, await fixture.embedded.score!(request)))).toBeLessThan(0.05);
  });

  it("judges EOS where an answer stopped: first after an honest stop, not first where the same answer is cut", async () => {
    const infoAsked = () => fixture.eosFake.requests.filter((r) => r.path === "/tokenizer_info").length;
    const asked = infoAsked();
    const eosAdapter = createVllmAdapter({ instances: [{ host: fixture.eosFake.url }], scoring: {} });
    const answer = await greedyReference({ modelPath: fixture.eosPath, messages: MESSAGES, maxTokens: 96 });
    expect(answer.tokens.length, "the EOS-heavy model stops on its own").toBeLessThan(96);
    expect(answer.tokens.length).toBeGreaterThan(1);
    const stopped = await eosAdapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
    expect(stopped.eos.rank).toBe(1);
    const cut = await eosAdapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens.slice(0, -1) });
    expect(cut.eos.rank).toBeGreaterThan(1);
    process.stdout.write(`vLLM reference, EOS after ${answer.tokens.length} tokens (a stop): rank ${stopped.eos.rank}, logprob ${stopped.eos.logprob.toFixed(3)}; one token earlier: rank ${cut.eos.rank}, logprob ${cut.eos.logprob.toFixed(3)}\n`);
    // The EOS id came from GET /tokenizer_info (its eos_token text, tokenised by /tokenize), asked once for two scorings.
    expect(infoAsked() - asked).toBe(1);
    const sent = fixture.eosFake.requests.filter((r) => r.path === "/v1/completions").at(-1)!.body as { prompt: number[]; prompt_logprobs: number; max_tokens: number };
    expect(sent.prompt.at(-1)).toBe(fixture.eosModel.eosToken);
    expect(sent).toMatchObject({ prompt_logprobs: 20, max_tokens: 1 });
  });

  it("takes the operator's EOS ids when given, and asks nothing for them", async () => {
    const noInfo = await FakeVllmScoring.start({ model: fixture.model, tokenizerInfo: false });
    try {
      const answer = await greedyReference({ modelPath: fixture.modelPath, messages: MESSAGES, maxTokens: 4 });
      const unset = createVllmAdapter({ instances: [{ host: noInfo.url }], scoring: {} });
      const error = await unset.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TesseraError);
      expect(error).toMatchObject({ code: "unsupported_parameter", param: "score_eos_token_ids", message: expect.stringContaining("--enable-tokenizer-info-endpoint") });
      expect((error as Error).message).toContain("--score-eos-token-ids");
      expect(completions(noInfo)).toBe(0);

      const given = createVllmAdapter({ instances: [{ host: noInfo.url }], scoring: { eosTokenIds: [fixture.model.eosToken] } });
      const scored = await given.score!({ model: MODEL, messages: MESSAGES, outputTokens: answer.tokens });
      expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
      expect(noInfo.requests.filter((r) => r.path === "/tokenizer_info")).toHaveLength(1); // only the first adapter's try
    } finally {
      await noInfo.close();
    }
  });

  it("with several instances, scores on the one serving the model asked, and refuses a model none serves", async () => {
    const second = await loadIdLevelModel({ modelPath: fixture.otherPath, modelId: "second" });
    const secondFake = await FakeVllmScoring.start({ model: second });
    try {
      const multi = createVllmAdapter({ instances: [{ host: fixture.fake.url, model: MODEL }, { host: secondFake.url, model: "second" }], scoring: {} });
      const listed = await multi.listModels();
      expect(listed).toEqual(expect.arrayContaining([expect.objectContaining({ id: MODEL, scoring: true }), expect.objectContaining({ id: "second", scoring: true })]));
      const answer = await greedyReference({ modelPath: fixture.otherPath, messages: MESSAGES, maxTokens: 8 });
      const before = completions(fixture.fake);
      const scored = await multi.score!({ model: "second", messages: MESSAGES, outputTokens: answer.tokens });
      expect(scored.positions.every((p) => p.rank === 1)).toBe(true);
      expect(completions(fixture.fake)).toBe(before);
      expect(completions(secondFake)).toBe(1);
      await expect(multi.score!({ model: "third", messages: MESSAGES, outputTokens: answer.tokens })).rejects.toMatchObject({ code: "model_not_found" });
    } finally {
      await secondFake.close();
      await second.close();
    }
  });

  it("refuses to score after prompt ids other than its own rendering: prompt_mismatch, before any scoring", async () => {
    const before = completions(fixture.fake);
    const error = await adapter.score!({ model: MODEL, messages: MESSAGES, promptTokens: [1, 2, 3], outputTokens: [100] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PromptMismatchError);
    expect(completions(fixture.fake)).toBe(before);
  });

  it("refuses an answer longer than it scores, before asking the server anything", async () => {
    const before = fixture.fake.requests.length;
    await expect(adapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: new Array(MAX_SCORED_POSITIONS + 1).fill(100) })).rejects.toMatchObject({ code: "bad_request", param: "output_tokens" });
    expect(fixture.fake.requests.length).toBe(before);
  });

  it("a model the server does not serve is model_not_found", async () => {
    await expect(adapter.score!({ model: "other-model", messages: MESSAGES, outputTokens: [100] })).rejects.toMatchObject({ code: "model_not_found" });
  });

  it.each([
    ["no-prompt-logprobs", "is missing"],
    ["keyed-by-text", "lacks the token there"],
    ["short-prompt-logprobs", "entries for"],
  ] as const)("a completion with %s is an internal_error naming vLLM and prompt_logprobs", async (fault, detail) => {
    fixture.fake.fault = fault;
    try {
      const error = await adapter.score!({ model: MODEL, messages: MESSAGES, outputTokens: [100, 200] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TesseraError);
      expect(error).toMatchObject({ code: "internal_error", param: "prompt_logprobs" });
      expect((error as Error).message).toMatch(/^vllm: malformed prompt_logprobs/);
      expect((error as Error).message).toContain(detail);
    } finally {
      fixture.fake.fault = undefined;
    }
  });

  it("a server started with --max-logprobs under 20 refuses, and the refusal is passed on as bad_request", async () => {
    const narrow = await FakeVllmScoring.start({ model: fixture.model, maxLogprobs: 5 });
    try {
      const scorer = createVllmAdapter({ instances: [{ host: narrow.url }], scoring: { eosTokenIds: [fixture.model.eosToken] } });
      const error = await scorer.score!({ model: MODEL, messages: MESSAGES, outputTokens: [100] }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "bad_request", message: expect.stringContaining("greater than max allowed: 5") });
    } finally {
      await narrow.close();
    }
  });
});
