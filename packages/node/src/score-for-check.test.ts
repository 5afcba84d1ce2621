import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChatMessage, type CheckScore, type CheckScores, type StreamPart, TesseraError } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter } from "./backends/adapter.js";
import { createEmbeddedBackend } from "./backends/embedded/embedded-backend.js";
import { scoreForCheck } from "./score-for-check.js";

/**
 * A reference node scoring another node's answer on the embedded engine: the same backend that generated an answer
 * greedily finds every token its first choice and counts the prompt as the generation did; tokens it would never
 * choose rank far down.
 */
let dir: string;
let backend: ReturnType<typeof createEmbeddedBackend>;
const MESSAGES: ChatMessage[] = [{ role: "user", content: "Tell me a story about a fox." }];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-score-"));
  const path = (await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 5, vocab: "spm" })).path;
  backend = createEmbeddedBackend({ modelPath: path, modelId: "tiny", threads: 1, maxSequences: 1 });
});
afterAll(async () => {
  await backend?.close();
  await rm(dir, { recursive: true, force: true });
});

const request = (outputTokens: number[], model = "tiny"): CheckScore => ({ type: "check.score", check_id: "c1", model, messages: MESSAGES, output_tokens: outputTokens });

describe("scoring for a spot check", () => {
  it("finds a greedy answer of the same engine its first choice everywhere, with the generation's prompt count", async () => {
    const parts: StreamPart[] = [];
    for await (const p of backend.doStream({ model: "tiny", messages: MESSAGES, sampling: { max_tokens: 12, temperature: 0, top_p: 1 } })) parts.push(p);
    const tokens = parts.flatMap((p) => (p.type === "text-delta" ? (p.tokens ?? []) : []));
    const usage = parts.find((p) => p.type === "usage");
    expect(tokens.length).toBeGreaterThan(0);
    const reply = (await scoreForCheck(backend, request(tokens))) as CheckScores;
    expect(reply.type).toBe("check.scores");
    expect(reply.positions.map((p) => p.token)).toEqual(tokens);
    expect(reply.positions.every((p) => p.rank === 1 && p.logprob <= 0 && p.top_mass! > 0 && p.top_mass! <= 1)).toBe(true);
    expect(reply.prompt_tokens).toBe(usage?.type === "usage" ? usage.prompt_tokens : -1);
    await expect(backend.listModels()).resolves.toEqual([expect.objectContaining({ id: "tiny", scoring: true, constrainedScoring: true })]);
  });

  it("ranks tokens the model would not choose outside its top 20", async () => {
    const reply = (await scoreForCheck(backend, request([5, 5, 5, 5]))) as CheckScores;
    expect(reply.positions.filter((p) => p.rank > 20).length).toBeGreaterThan(0);
  });

  it("scores a JSON answer under its grammar when check.score carries the constraint, and not without it", async () => {
    const constraint = { response_format: { type: "json_object" as const } };
    const parts: StreamPart[] = [];
    for await (const p of backend.doStream({ model: "tiny", messages: MESSAGES, sampling: { max_tokens: 24, temperature: 0, top_p: 1, ...constraint } })) parts.push(p);
    const tokens = parts.flatMap((p) => (p.type === "text-delta" ? (p.tokens ?? []) : []));
    const under = (await scoreForCheck(backend, { ...request(tokens), constraint })) as CheckScores;
    expect(under.type).toBe("check.scores");
    expect(under.positions.every((p) => p.rank === 1)).toBe(true);
    // Ranked in the model's own top 20, the grammar's forced `{` is not a token this random model would write.
    const plain = (await scoreForCheck(backend, request(tokens))) as CheckScores;
    expect(plain.positions.some((p) => p.rank > 20)).toBe(true);
    // A backend that scores without a grammar refuses, and the check is abandoned (no prompt_mismatch: nobody is charged).
    const refusing = { kind: "vllm", score: () => Promise.reject(new TesseraError("unsupported_parameter", "vllm cannot score an answer under its grammar")) } as unknown as BackendAdapter;
    expect(await scoreForCheck(refusing, { ...request(tokens), constraint })).toEqual({ type: "check.error", check_id: "c1", message: "vllm cannot score an answer under its grammar" });
  });

  it("answers check.error, never throws, for another model, a token outside the vocabulary, or a backend that cannot score", async () => {
    expect(await scoreForCheck(backend, request([1], "other"))).toMatchObject({ type: "check.error", message: expect.stringMatching(/not served here/) });
    expect(await scoreForCheck(backend, request([10_000_000]))).toMatchObject({ type: "check.error", message: expect.stringMatching(/outside the vocabulary/) });
    const plain = { kind: "ollama" } as BackendAdapter;
    expect(await scoreForCheck(plain, request([1]))).toEqual({ type: "check.error", check_id: "c1", message: "backend ollama cannot score given tokens" });
  });
});
