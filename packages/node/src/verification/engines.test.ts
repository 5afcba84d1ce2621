/**
 * Both verification engines on the same small GGUF file: what one generates, the other scores as its own choice
 * at every position, with log-probabilities that agree to the cross-engine numerical difference; foreign tokens fall
 * outside the top 20; EOS is plausible exactly where a generation stopped.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getLlama, LlamaLogLevel, type Llama } from "node-llama-cpp";
import { makeTinyModel, type TinyModelInfo } from "@tessera/testkit";
import { createEmbeddedEngine } from "./embedded-engine.js";
import { createStageEngine } from "./stage-engine.js";
import { TOP_K_SCORED, type VerificationEngine } from "./types.js";

let dir: string;
let llama: Llama;
let model: TinyModelInfo;
let stopping: TinyModelInfo;
const engines: VerificationEngine[] = [];

const PROMPTS = [
  [1, 450, 4996, 17354, 1701, 29916],
  [1, 3575, 338, 263, 1243],
  [1, 12, 29871, 8001, 4444, 100, 31000, 2000, 5],
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "verification-"));
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  model = await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 3, embeddingLength: 128, feedForwardLength: 256 });
  // A strong EOS row: greedy answers end early, so the stop path is exercised.
  stopping = await makeTinyModel({ path: join(dir, "stopping.gguf"), seed: 4, eosScale: 3 });
});

afterAll(async () => {
  for (const e of engines) await e.close();
  await llama.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function both(path: string): Promise<[VerificationEngine, VerificationEngine]> {
  const e = await createEmbeddedEngine({ modelPath: path, llama, contextSize: 256 });
  const s = createStageEngine({ path, maxContext: 256 });
  engines.push(e, s);
  return [e, s];
}

describe("verification engines", () => {
  it("each engine scores the other's greedy tokens as its own first choice, log-probabilities within 0.05", async () => {
    const [embedded, stage] = await both(model.path);
    expect(embedded.eosToken).toBe(model.eosId);
    expect(stage.eosToken).toBe(model.eosId);
    expect(embedded.vocabSize).toBe(model.vocabSize);
    for (const prompt of PROMPTS) {
      for (const [gen, ref] of [
        [embedded, stage],
        [stage, embedded],
      ] as const) {
        const g = await gen.generate(prompt, { maxTokens: 24 });
        expect(g.tokens.length).toBe(24);
        expect(g.finishReason).toBe("length");
        expect(g.promptTokens).toBe(prompt.length);
        expect(g.logprobs.every((l, i) => l.token === g.tokens[i] && l.top.length === 5 && l.top[0].token === l.token)).toBe(true);
        const s = await ref.score(prompt, g.tokens);
        expect(s.promptTokens).toBe(prompt.length);
        expect(s.positions.map((p) => p.token)).toEqual(g.tokens);
        expect(s.positions.map((p) => p.rank)).toEqual(g.tokens.map(() => 1));
        for (let i = 0; i < g.tokens.length; i++) {
          expect(Math.abs(s.positions[i].logprob - g.logprobs[i].logprob)).toBeLessThan(0.05);
          expect(s.positions[i].top.length).toBe(TOP_K_SCORED);
          expect(s.positions[i].top[0].token).toBe(g.tokens[i]);
        }
        expect(s.eos.token).toBe(model.eosId);
        expect(s.eos.logprob).toBeLessThan(0);
      }
    }
  });

  it("the stage engine's batched scoring reproduces its own generation's log-probabilities exactly", async () => {
    const [, stage] = await both(model.path);
    const g = await stage.generate(PROMPTS[0], { maxTokens: 16, topLogprobs: 8 });
    const s = await stage.score(PROMPTS[0], g.tokens);
    expect(s.positions.map((p) => p.logprob)).toEqual(g.logprobs.map((l) => l.logprob));
    expect(g.logprobs[0].top.length).toBe(8);
  });

  it("tokens from nowhere are ranked outside the top 20 by both engines", async () => {
    const [embedded, stage] = await both(model.path);
    const garbage = [31000, 17, 29999, 2001, 30500, 777, 12345, 4242];
    for (const ref of [embedded, stage]) {
      const s = await ref.score(PROMPTS[1], garbage);
      const outside = s.positions.filter((p) => p.rank > TOP_K_SCORED).length;
      expect(outside).toBeGreaterThanOrEqual(garbage.length - 1);
      expect(s.positions.every((p) => p.logprob < s.positions.length && p.logprob < 0)).toBe(true);
    }
  });

  it("a generation that stops at EOS is scored with EOS as the reference's first choice right there", async () => {
    const [embedded, stage] = await both(stopping.path);
    let stops = 0;
    for (const prompt of PROMPTS) {
      const g = await embedded.generate(prompt, { maxTokens: 64 });
      const g2 = await stage.generate(prompt, { maxTokens: 64 });
      expect(g2.tokens).toEqual(g.tokens);
      expect(g2.finishReason).toBe(g.finishReason);
      if (g.finishReason !== "stop") continue;
      stops++;
      expect(g.tokens).not.toContain(stopping.eosId);
      const s = await stage.score(prompt, g.tokens);
      expect(s.eos.rank).toBe(1);
      // Cut the answer short: EOS is no longer what the reference expects there.
      if (g.tokens.length >= 3) {
        const early = await stage.score(prompt, g.tokens.slice(0, g.tokens.length - 2));
        expect(early.eos.rank).toBeGreaterThan(1);
      }
    }
    expect(stops).toBeGreaterThan(0);
  });

  it("refuses an empty prompt and out-of-vocabulary tokens by name", async () => {
    const [embedded, stage] = await both(model.path);
    for (const e of [embedded, stage]) {
      await expect(e.score([], [5])).rejects.toMatchObject({ code: "bad_request" });
      await expect(e.score([1], [model.vocabSize])).rejects.toThrow(/outside the vocabulary/);
      // Past the context: refused, never scored on a shifted context.
      await expect(e.score(Array.from({ length: 200 }, () => 5), Array.from({ length: 100 }, () => 6))).rejects.toMatchObject({ code: "bad_request" });
    }
  });
});
