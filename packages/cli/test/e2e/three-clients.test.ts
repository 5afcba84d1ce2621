import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APICallError, generateText, streamText } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { ChatOpenAI } from "@langchain/openai";
import { spawn } from "node:child_process";
import { type Cluster, TESSERA_BIN, greedyReference, makeTinyModel, schemaViolations, startCluster } from "@tessera/testkit";

/**
 * Issue 11: two OpenAI clients nobody on this project wrote, as their users call them, against real processes (a
 * coordinator and a daemon on the embedded engine, a random-weight model): the Vercel AI SDK with its
 * OpenAI-compatible provider, and LangChain's ChatOpenAI, structured output included. (The official `openai` client
 * is exercised throughout the other end-to-end tests.)
 */
let dir: string;
let modelPath: string;
let cluster: Cluster;
const PROMPT = "Tell me about rivers.";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-e2e-clients-"));
  modelPath = join(dir, "tessera-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 42, vocab: "spm" });
  cluster = await startCluster({ nodes: 1, modelPath });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the Vercel AI SDK (ai + @ai-sdk/openai-compatible)", () => {
  const provider = () => createOpenAICompatible({ name: "tessera", baseURL: `${cluster.url}/v1`, apiKey: "open-mode", includeUsage: true });

  it("generateText and streamText give the model's greedy answer, with usage", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], maxTokens: 12 });
    const whole = await generateText({ model: provider()(cluster.model!), prompt: PROMPT, temperature: 0, maxOutputTokens: 12, maxRetries: 0 });
    expect(whole.text).toBe(reference.text);
    expect(whole.usage.outputTokens).toBe(12);
    const streamed = streamText({ model: provider()(cluster.model!), prompt: PROMPT, temperature: 0, maxOutputTokens: 12, maxRetries: 0 });
    let text = "";
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe(reference.text);
    expect((await streamed.usage).outputTokens).toBe(12);
  }, 60_000);

  it("shows Tessera's error message, not just a status, for a model that is not served", async () => {
    const err = await generateText({ model: provider()("no-such-model"), prompt: PROMPT, maxRetries: 0 }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    expect((err as APICallError).statusCode).toBe(404);
    expect((err as APICallError).message).toMatch(new RegExp(`available models: ${cluster.model}`));
  }, 60_000);
});

describe("LangChain (@langchain/openai ChatOpenAI)", () => {
  const chat = (options: { maxTokens?: number } = {}) =>
    new ChatOpenAI({ model: cluster.model!, temperature: 0, maxRetries: 0, apiKey: "open-mode", configuration: { baseURL: `${cluster.url}/v1` }, ...options });

  it("invoke and stream give the model's greedy answer", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], maxTokens: 10 });
    const answer = await chat({ maxTokens: 10 }).invoke(PROMPT);
    expect(answer.content).toBe(reference.text);
    let text = "";
    for await (const chunk of await chat({ maxTokens: 10 }).stream(PROMPT)) text += String(chunk.content);
    expect(text).toBe(reference.text);
  }, 60_000);

  it("withStructuredOutput returns an object that satisfies the schema (JSON-schema grammar on the node)", async () => {
    // A JSON schema rather than a zod one: this LangChain line converts zod 3 schemas, and the workspace has zod 4.
    const weather = {
      title: "weather",
      type: "object",
      properties: { city: { type: "string", maxLength: 12 }, sky: { enum: ["sunny", "cloudy", "rainy"] }, windy: { type: "boolean" } },
      required: ["city", "sky", "windy"],
      additionalProperties: false,
    };
    const structured = chat({ maxTokens: 200 }).withStructuredOutput(weather, { name: "weather", method: "jsonSchema", strict: true });
    const result = await structured.invoke("What is the weather in Oslo?");
    expect(schemaViolations(weather, result)).toEqual([]);
  }, 60_000);
});

describe("tessera chat without a prompt", () => {
  it("chats turn by turn, sending the whole history each time", async () => {
    const child = spawn(process.execPath, [TESSERA_BIN, "chat", "--url", cluster.url, "--temperature", "0", "--max-tokens", "8", "--seed", "3"], {
      env: { ...process.env, TESSERA_URL: "", TESSERA_API_KEY: "" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdin.end("Tell me about rivers.\n\nAnd about stones?\n");
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const first = await greedyReference({ modelPath, messages: [{ role: "user", content: "Tell me about rivers." }], maxTokens: 8 });
    const second = await greedyReference({
      modelPath,
      messages: [
        { role: "user", content: "Tell me about rivers." },
        { role: "assistant", content: first.text },
        { role: "user", content: "And about stones?" },
      ],
      maxTokens: 8,
    });
    expect(stdout).toBe(`${first.text}\n${second.text}\n`);
  }, 60_000);
});
