import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StreamPart } from "@tessera/protocol";
import { greedyReference, makeTinyModel } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../adapter.js";
import { scoreForCheck } from "../../score-for-check.js";
import { createEmbeddedBackend, type EmbeddedBackend } from "./embedded-backend.js";

/**
 * Raw prompts on the embedded engine (`/v1/completions`): the prompt is tokenized as llama-server tokenizes one (BOS,
 * then the text, no template), continued greedily exactly as node-llama-cpp does in-process, continued exactly after
 * failover, constrained by a grammar when asked, scored for spot checks the same way, and never offered tools.
 */
const PROMPT = "Once upon a time, in a quiet harbour,";
const MESSAGES = [{ role: "user" as const, content: PROMPT }];
let dir: string;
let modelPath: string;
let backend: EmbeddedBackend;

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
const deltas = (parts: StreamPart[]) => parts.flatMap((p) => (p.type === "text-delta" ? [p] : []));
const textOf = (parts: StreamPart[]) => deltas(parts).map((p) => p.text).join("");
const tokensOf = (parts: StreamPart[]) => deltas(parts).flatMap((p) => p.tokens ?? []);

const request = (patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
  model: "tiny-raw",
  messages: MESSAGES,
  rawPrompt: true,
  sampling: { max_tokens: 20, temperature: 0, top_p: 1 },
  ...patch,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-raw-"));
  modelPath = (await makeTinyModel({ path: join(dir, "tiny-raw.gguf"), seed: 11, vocab: "spm" })).path;
  backend = createEmbeddedBackend({ modelPath, threads: 1, maxSequences: 2 });
}, 60_000);
afterAll(async () => {
  await backend?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("embedded backend: raw prompts", () => {
  it("announces raw_prompt", async () => {
    expect((await backend.listModels())[0]!.features).toContain("raw_prompt");
  });

  it("continues the raw prompt exactly as node-llama-cpp does greedily from BOS + the text, with no template", async () => {
    const [reference, chat] = await Promise.all([
      greedyReference({ modelPath, messages: MESSAGES, rawPrompt: true, maxTokens: 20 }),
      greedyReference({ modelPath, messages: MESSAGES, maxTokens: 20 }),
    ]);
    const parts = await collect(backend.doStream(request()));
    expect(textOf(parts)).toBe(reference.text);
    expect(tokensOf(parts)).toEqual(reference.tokens);
    expect(parts.find((p) => p.type === "usage")).toEqual({ type: "usage", prompt_tokens: reference.promptTokens, completion_tokens: reference.completionTokens });
    expect(reference.promptTokens).not.toBe(chat.promptTokens);
  }, 60_000);

  it("a continuation from another node's text and tokens joins into the uninterrupted answer", async () => {
    const whole = await collect(backend.doStream(request()));
    const first = deltas(whole).slice(0, 5);
    const prefix = first.map((d) => d.text).join("");
    const rest = await collect(backend.doStream(request({ assistantPrefix: prefix, assistantPrefixTokens: first.flatMap((d) => d.tokens ?? []), sampling: { max_tokens: 20 - first.flatMap((d) => d.tokens ?? []).length, temperature: 0, top_p: 1 } })));
    expect(prefix + textOf(rest)).toBe(textOf(whole));
  }, 60_000);

  it("constrains a raw completion to a JSON schema by grammar", async () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    const parts = await collect(backend.doStream(request({ sampling: { max_tokens: 40, temperature: 0, top_p: 1, response_format: { type: "json_schema", json_schema: { name: "ok", schema, strict: true } } } })));
    const value = JSON.parse(textOf(parts)) as { ok: unknown };
    expect(typeof value.ok).toBe("boolean");
  }, 60_000);

  it("refuses tools with a raw prompt, and a raw prompt that is not one user message", async () => {
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
    const withTools = await collect(backend.doStream(request({ sampling: { max_tokens: 8, temperature: 0, top_p: 1, tools } })));
    expect(withTools[0]).toMatchObject({ type: "error", code: "bad_request", message: expect.stringMatching(/tools/) });
    const twoMessages = await collect(backend.doStream(request({ messages: [{ role: "system", content: "s" }, ...MESSAGES] })));
    expect(twoMessages[0]).toMatchObject({ type: "error", code: "bad_request" });
  });

  it("scores a raw job's tokens after the raw prompt (a spot check's reference), matching generation", async () => {
    const reference = await greedyReference({ modelPath, messages: MESSAGES, rawPrompt: true, maxTokens: 12 });
    const scores = await scoreForCheck(backend, { type: "check.score", check_id: "c1", model: "tiny-raw", messages: MESSAGES, raw_prompt: true, output_tokens: reference.tokens });
    expect(scores).toMatchObject({ type: "check.scores", prompt_tokens: reference.promptTokens });
    if (scores.type !== "check.scores") throw new Error(scores.message);
    expect(scores.positions.map((p) => p.token)).toEqual(reference.tokens);
    expect(scores.positions.every((p) => p.rank === 1)).toBe(true);
    // Scored as a chat instead, the prompt is another one.
    const asChat = await scoreForCheck(backend, { type: "check.score", check_id: "c2", model: "tiny-raw", messages: MESSAGES, output_tokens: reference.tokens });
    expect(asChat).toMatchObject({ type: "check.scores" });
    expect((asChat as { prompt_tokens: number }).prompt_tokens).not.toBe(reference.promptTokens);
  }, 60_000);
});
