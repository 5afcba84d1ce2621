import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildLlamaServer, makeTinyModel, startLlamaServer, type RunningLlamaServer } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaServerEngine } from "../../src/verification/llama-server-engine.js";
import type { VerificationEngine } from "../../src/verification/types.js";

/**
 * The llama-server verification engine (the calibration's cross-CPU pair) against a REAL llama-server built by the
 * testkit: what it generates, it scores back as the server's own greedy choice with the generation's
 * log-probabilities. Skips with a printed notice where no llama-server can be built (mandatory under CI=true).
 */
let skipReason: string | undefined;
let dir: string;
let server: RunningLlamaServer | undefined;
let engine: VerificationEngine;
let bos = 1;

beforeAll(async () => {
  const build = await buildLlamaServer();
  if (build.binaryPath === undefined) {
    skipReason = build.reason;
    process.stderr.write(`\n*** llama-server-engine.test.ts SKIPPED: ${build.reason} ***\n\n`);
    return;
  }
  dir = mkdtempSync(join(tmpdir(), "tessera-llama-server-engine-"));
  // A strong EOS row, so some answers stop before max_tokens and the EOS handling is exercised.
  const model = await makeTinyModel({ path: join(dir, "tiny-eos.gguf"), seed: 3, eosScale: 2.5 });
  bos = model.bosId;
  server = await startLlamaServer({ binaryPath: build.binaryPath, modelPath: model.path, contextSize: 512 });
  engine = createLlamaServerEngine({ baseURL: server.baseURL, eosToken: model.eosId, vocabSize: model.vocabSize });
}, 60 * 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("llama-server as a verification engine", () => {
  // Equal to float32 rounding, not bit for bit: on an Intel Xeon with AMX (this CI machine, 2026-12-05) one position
  // in 94 differed by 1.5e-7 (about 10 float32 steps at -0.175) between the generating and the scoring request; the
  // other 93, and every position on an AMD Zen 4, were identical. The verdict allows a mean gap of 0.05, 300 000 times more.
  it("scores its own greedy tokens at rank 1 with the generation's log-probabilities (to float32 rounding), EOS included where it stopped", async (ctx) => {
    if (skipReason) return ctx.skip();
    const finishes = new Set<string>();
    for (const prompt of [[bos, 10, 11, 12], [bos, 200, 31, 7, 99, 5], [bos, 42], [bos, 1000, 2000, 3000]]) {
      const gen = await engine.generate(prompt, { maxTokens: 24 });
      finishes.add(gen.finishReason);
      expect(gen.tokens.length).toBe(gen.logprobs.length);
      expect(gen.tokens).not.toContain(engine.eosToken);
      if (gen.finishReason === "length") expect(gen.tokens.length).toBe(24);
      for (const step of gen.logprobs) {
        expect(step.top).toHaveLength(5);
        expect(step.top[0]!.token).toBe(step.token);
      }
      const scores = await engine.score(prompt, gen.tokens);
      expect(scores.promptTokens).toBe(prompt.length);
      expect(scores.positions.map((p) => p.rank)).toEqual(gen.tokens.map(() => 1));
      expect(scores.positions.map((p) => p.token)).toEqual(gen.tokens);
      scores.positions.forEach((p, i) => {
        expect(Math.abs(p.logprob - gen.logprobs[i]!.logprob)).toBeLessThanOrEqual(1e-6);
        expect(p.top).toHaveLength(20);
        expect(p.top[0]).toEqual({ token: p.token, logprob: p.logprob });
      });
      if (gen.finishReason === "stop") expect(scores.eos).toMatchObject({ token: engine.eosToken, rank: 1 });
      else expect(scores.eos.rank).toBeGreaterThanOrEqual(1);
    }
    expect(finishes).toEqual(new Set(["stop", "length"]));
  });
});
