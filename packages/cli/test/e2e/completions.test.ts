import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { generateText, streamText } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { OpenAI as LangChainOpenAI } from "@langchain/openai";
import { type Cluster, greedyReference, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * Issue 11, `POST /v1/completions` on real processes: a coordinator and a daemon running the embedded llama.cpp engine
 * on a generated model, driven by the official `openai` client. A legacy completion continues the raw prompt with no
 * chat template, so at temperature 0 it equals what node-llama-cpp produces greedily in-process from the prompt's own
 * tokens (BOS, then the text) on the same file.
 */
let dir: string;
let modelPath: string;
let cluster: Cluster;
let client: OpenAI;

const PROMPT = "The lighthouse keeper opened the door and";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-e2e-completions-"));
  modelPath = join(dir, "tessera-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 42, vocab: "spm" });
  cluster = await startCluster({ nodes: 1, modelPath });
  client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("/v1/completions with the openai client on the embedded engine", () => {
  it("logprobs: the greedy continuation's tokens spell its text, each the likeliest of its alternatives", async () => {
    const plain = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 12, temperature: 0 });
    const scored = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 12, temperature: 0, logprobs: 3 });
    const choice = scored.choices[0]!;
    expect(choice.text).toBe(plain.choices[0]!.text);
    const lp = choice.logprobs!;
    expect(lp.tokens!.join("")).toBe(choice.text);
    expect(lp.tokens).toHaveLength(scored.usage!.completion_tokens);
    lp.tokens!.forEach((token, i) => {
      const top = lp.top_logprobs![i]!;
      expect(Object.keys(top).length).toBeLessThanOrEqual(3);
      expect(top[token]).toBe(lp.token_logprobs![i]);
      expect(Math.max(...Object.values(top))).toBe(lp.token_logprobs![i]);
      expect(lp.text_offset![i]).toBe(lp.tokens!.slice(0, i).join("").length);
    });
  }, 60_000);

  it("continues the raw prompt exactly as llama.cpp does greedily (no chat template), whole and streamed", async () => {
    const messages = [{ role: "user" as const, content: PROMPT }];
    const [reference, chatReference] = await Promise.all([
      greedyReference({ modelPath, messages, rawPrompt: true, maxTokens: 24 }),
      greedyReference({ modelPath, messages, maxTokens: 24 }),
    ]);
    expect(reference.text.length).toBeGreaterThan(0);
    // The template would have changed the prompt, and so the answer.
    expect(reference.text).not.toBe(chatReference.text);

    const whole = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 24, temperature: 0 });
    expect(whole.object).toBe("text_completion");
    expect(whole.choices).toHaveLength(1);
    expect(whole.choices[0]).toMatchObject({ index: 0, text: reference.text, logprobs: null });
    expect(whole.choices[0]!.finish_reason).toBe(reference.completionTokens >= 24 ? "length" : "stop");
    expect(whole.usage).toMatchObject({ prompt_tokens: reference.promptTokens, completion_tokens: reference.completionTokens });

    const stream = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("text_completion");
      text += chunk.choices[0]?.text ?? "";
      if (chunk.usage) usage = chunk.usage;
      chunks++;
    }
    expect(text).toBe(reference.text);
    expect(chunks).toBeGreaterThan(2);
    expect(usage).toMatchObject({ prompt_tokens: reference.promptTokens, completion_tokens: reference.completionTokens });
  }, 120_000);

  it("n: 2 gives two choices (greedy: both the reference), usage counting the prompt once", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], rawPrompt: true, maxTokens: 8 });
    const completion = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 8, temperature: 0, n: 2 });
    expect(completion.choices.map((c) => [c.index, c.text])).toEqual([
      [0, reference.text],
      [1, reference.text],
    ]);
    expect(completion.usage).toMatchObject({ prompt_tokens: reference.promptTokens, completion_tokens: 2 * reference.completionTokens });
  }, 120_000);

  it("stop is honoured: the text ends before the stop sequence, which is never sent, streamed or not", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], rawPrompt: true, maxTokens: 24 });
    const middle = Math.floor(reference.text.length / 2);
    const stop = reference.text.slice(middle, middle + 2);
    const expected = reference.text.slice(0, reference.text.indexOf(stop));
    const whole = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 24, temperature: 0, stop: [stop] });
    expect(whole.choices[0]).toMatchObject({ text: expected, finish_reason: "stop" });
    const stream = await client.completions.create({ model: cluster.model!, prompt: PROMPT, max_tokens: 24, temperature: 0, stop, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(expected);
  }, 120_000);

  it("a bad parameter shows its message and param in the client", async () => {
    const echo = await client.completions.create({ model: cluster.model!, prompt: PROMPT, echo: true }).catch((e: unknown) => e);
    expect(echo).toBeInstanceOf(OpenAI.BadRequestError);
    expect((echo as InstanceType<typeof OpenAI.BadRequestError>).message).toMatch(/echo is not supported/);
    expect((echo as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("echo");
    const tooHot = await client.completions.create({ model: cluster.model!, prompt: PROMPT, temperature: 5 }).catch((e: unknown) => e);
    expect(tooHot).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tooHot as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("temperature");
    const tokens = await client.completions.create({ model: cluster.model!, prompt: [1, 2, 3], max_tokens: 4 }).catch((e: unknown) => e);
    expect(tokens).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tokens as InstanceType<typeof OpenAI.BadRequestError>).message).toMatch(/token ids/);
  }, 60_000);
});

describe("/v1/completions with the other clients", () => {
  it("the Vercel AI SDK's completion model: generateText and streamText continue the prompt it builds, as llama.cpp does", async () => {
    // The SDK writes a chat as a document ("user:\n…\n\nassistant:\n") and stops at "\nuser:".
    const document = `user:\n${PROMPT}\n\nassistant:\n`;
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: document }], rawPrompt: true, maxTokens: 16 });
    const cut = reference.text.indexOf("\nuser:");
    const expected = cut >= 0 ? reference.text.slice(0, cut) : reference.text;
    const provider = createOpenAICompatible({ name: "tessera", baseURL: `${cluster.url}/v1`, apiKey: "open-mode" });
    const model = provider.completionModel(cluster.model!);
    const whole = await generateText({ model, prompt: PROMPT, maxOutputTokens: 16, temperature: 0, maxRetries: 0 });
    expect(whole.text).toBe(expected);
    const streamed = streamText({ model, prompt: PROMPT, maxOutputTokens: 16, temperature: 0, maxRetries: 0 });
    let text = "";
    for await (const part of streamed.textStream) text += part;
    expect(text).toBe(expected);
  }, 120_000);

  it("LangChain's OpenAI completion LLM: invoke and stream continue the raw prompt", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], rawPrompt: true, maxTokens: 16 });
    const llm = new LangChainOpenAI({ model: cluster.model!, temperature: 0, maxTokens: 16, maxRetries: 0, apiKey: "open-mode", configuration: { baseURL: `${cluster.url}/v1` } });
    expect(await llm.invoke(PROMPT)).toBe(reference.text);
    let text = "";
    for await (const piece of await llm.stream(PROMPT)) text += piece;
    expect(text).toBe(reference.text);
  }, 120_000);
});
