import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type Cluster, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * Issue 11, logprobs, on real processes: a coordinator and a daemon running the embedded llama.cpp engine, driven by
 * the official `openai` client. The log-probabilities must be present, shaped as OpenAI's, and consistent with the
 * tokens of the answer.
 */
let dir: string;
let cluster: Cluster;
let client: OpenAI;
const messages = [{ role: "user" as const, content: "Tell me about foxes." }];
const decode = (bytes: number[]) => Buffer.from(bytes).toString("utf8");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-e2e-logprobs-"));
  const modelPath = join(dir, "tessera-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 42, vocab: "spm" });
  cluster = await startCluster({ nodes: 1, modelPath });
  client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("logprobs with the openai client on the embedded engine", () => {
  it("greedy: one entry per token, spelling the answer, the chosen token first among its alternatives", async () => {
    const plain = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 0 });
    const answer = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 0, logprobs: true, top_logprobs: 3 });
    const choice = answer.choices[0]!;
    expect(choice.message.content).toBe(plain.choices[0]!.message.content);
    const content = choice.logprobs!.content!;
    expect(content).toHaveLength(answer.usage!.completion_tokens);
    expect(content.map((t) => t.token).join("")).toBe(choice.message.content);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(decode(t.bytes!)).toBe(t.token);
      expect(t.top_logprobs).toHaveLength(3);
      expect(t.top_logprobs[0]).toMatchObject({ token: t.token, logprob: t.logprob });
      expect(t.top_logprobs[1]!.logprob).toBeLessThanOrEqual(t.top_logprobs[0]!.logprob);
    }
    expect(plain.choices[0]!.logprobs).toBeNull();
  }, 60_000);

  it("streamed: each chunk carries the tokens of its text, and they add up to the whole answer's", async () => {
    const whole = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 0, logprobs: true });
    const stream = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 0, logprobs: true, stream: true });
    let text = "";
    const tokens: string[] = [];
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      const delta = choice.delta.content ?? "";
      const pieces = (choice.logprobs?.content ?? []).map((t) => t.token);
      if (delta) expect(pieces.join("")).toBe(delta);
      text += delta;
      tokens.push(...pieces);
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(tokens).toEqual(whole.choices[0]!.logprobs!.content!.map((t) => t.token));
  }, 60_000);

  it("sampled with a seed: log-probabilities of the sampled tokens, the same answer again for the same seed", async () => {
    const ask = () => client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 1, seed: 7, logprobs: true, top_logprobs: 5 });
    const [a, b] = [await ask(), await ask()];
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    const content = a.choices[0]!.logprobs!.content!;
    expect(content.map((t) => t.token).join("")).toBe(a.choices[0]!.message.content);
    // The sampled token is one of the 40 candidates, so its log-probability is at most the best alternative's.
    for (const t of content) expect(t.logprob).toBeLessThanOrEqual(t.top_logprobs[0]!.logprob);
  }, 60_000);

  it("with a stop sequence, the tokens end where the text does", async () => {
    const whole = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 24, temperature: 0, logprobs: true });
    const text = whole.choices[0]!.message.content!;
    const stop = text.slice(6, 9);
    const cut = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 24, temperature: 0, logprobs: true, stop: [stop] });
    const content = cut.choices[0]!.message.content!;
    expect(content).toBe(text.slice(0, text.indexOf(stop)));
    const joined = cut.choices[0]!.logprobs!.content!.map((t) => t.token).join("");
    // Every token whose text began before the stop is there (the last may hold the stop's first characters).
    expect(joined.startsWith(content)).toBe(true);
    expect(joined.length).toBeLessThan(text.length);
  }, 60_000);

  it("logprobs on an answer the engine constrains by grammar: the node declines, no other can, the client hears which parameter", async () => {
    const err = await client.chat.completions
      .create({ model: cluster.model!, messages, max_tokens: 8, logprobs: true, response_format: { type: "json_object" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.code).toBe("unsupported_parameter");
    expect(e.message).toMatch(/logprobs/);
  }, 60_000);

  it("bad logprobs parameters are refused by name", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ top_logprobs: 2 }, "top_logprobs"],
      [{ logprobs: true, top_logprobs: 21 }, "top_logprobs"],
      [{ logprobs: "yes" }, "logprobs"],
    ];
    for (const [extra, param] of cases) {
      const err = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 4, ...extra } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(param);
    }
  }, 60_000);
});
