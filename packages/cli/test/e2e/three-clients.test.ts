import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { APICallError, type ModelMessage, generateObject, generateText, jsonSchema, streamText, tool } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { ChatOpenAI } from "@langchain/openai";
import { AIMessage, HumanMessage, ToolMessage } from "@langchain/core/messages";
import { spawn } from "node:child_process";
import { type Cluster, TESSERA_BIN, greedyReference, makeTinyModel, schemaViolations, startCluster } from "@tessera/testkit";

/**
 * Issue 11: the rows of the table with the clients nobody on this project wrote, as their users call them,
 * against real processes (a coordinator and a daemon on the embedded engine, a random-weight model): the Vercel AI SDK
 * with its OpenAI-compatible provider, LangChain's ChatOpenAI, and the official `openai` client for the chat rows the
 * other end-to-end files do not cover (stop, n, models.retrieve, image parts). JSON mode, tools and logprobs with the
 * `openai` client are in json-and-tools.test.ts and logprobs.test.ts; embeddings with all three in embeddings.test.ts;
 * completions in completions.test.ts; stop across a failover in failover.test.ts.
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

const WEATHER_PARAMETERS = {
  type: "object",
  properties: { city: { type: "string", maxLength: 12 }, unit: { enum: ["c", "f"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};
/** A one-pixel PNG, as a client would attach a picture. */
const PIXEL = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=", "base64");

/** The greedy answer to PROMPT, a stop sequence from its middle, and the text a client must see with that stop. */
async function stopCase(maxTokens: number): Promise<{ stop: string; expected: string }> {
  const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], maxTokens });
  const middle = Math.floor(reference.text.length / 2);
  const stop = reference.text.slice(middle, middle + 2);
  const expected = reference.text.slice(0, reference.text.indexOf(stop));
  expect(expected.length).toBeGreaterThan(0); // else an answer that came back empty would pass
  return { stop, expected };
}

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

  it("stopSequences end the answer before the stop, which is never sent, streamed or not", async () => {
    const { stop, expected } = await stopCase(24);
    const whole = await generateText({ model: provider()(cluster.model!), prompt: PROMPT, temperature: 0, maxOutputTokens: 24, stopSequences: [stop], maxRetries: 0 });
    expect(whole.text).toBe(expected);
    expect(whole.finishReason).toBe("stop");
    const streamed = streamText({ model: provider()(cluster.model!), prompt: PROMPT, temperature: 0, maxOutputTokens: 24, stopSequences: [stop], maxRetries: 0 });
    let text = "";
    for await (const delta of streamed.textStream) text += delta;
    expect(text).toBe(expected);
  }, 60_000);

  it("generateObject (JSON schema as response_format) returns an object that satisfies the schema", async () => {
    const structured = createOpenAICompatible({ name: "tessera", baseURL: `${cluster.url}/v1`, apiKey: "open-mode", supportsStructuredOutputs: true });
    const result = await generateObject({ model: structured(cluster.model!), schema: jsonSchema(WEATHER_PARAMETERS), prompt: "Weather in Oslo?", maxOutputTokens: 200, maxRetries: 0 });
    expect(schemaViolations(WEATHER_PARAMETERS, result.object)).toEqual([]);
  }, 60_000);

  it("a forced tool call comes back as a tool call (streamed too), and the tool-result turn is answered", async () => {
    const tools = { get_weather: tool({ description: "Current weather in a city", inputSchema: jsonSchema(WEATHER_PARAMETERS) }) };
    const toolChoice = { type: "tool" as const, toolName: "get_weather" as const };
    const messages: ModelMessage[] = [{ role: "user", content: "What is the weather in Oslo?" }];
    const first = await generateText({ model: provider()(cluster.model!), messages, tools, toolChoice, maxOutputTokens: 200, seed: 3, maxRetries: 0 });
    expect(first.finishReason).toBe("tool-calls");
    expect(first.toolCalls).toHaveLength(1);
    const call = first.toolCalls[0]!;
    expect(call.toolName).toBe("get_weather");
    expect(schemaViolations(WEATHER_PARAMETERS, call.input)).toEqual([]);

    const streamed = streamText({ model: provider()(cluster.model!), messages, tools, toolChoice, maxOutputTokens: 200, seed: 3, maxRetries: 0 });
    const streamedCalls = await streamed.toolCalls;
    expect(streamedCalls.map((c) => [c.toolName, c.input])).toEqual([["get_weather", call.input]]);

    messages.push(...first.response.messages, {
      role: "tool",
      content: [{ type: "tool-result", toolCallId: call.toolCallId, toolName: "get_weather", output: { type: "json", value: { temperature: 4, unit: "c" } } }],
    });
    const second = await generateText({ model: provider()(cluster.model!), messages, tools, toolChoice: "none", maxOutputTokens: 16, seed: 4, maxRetries: 0 });
    expect(second.toolCalls).toEqual([]);
    expect(second.text.length).toBeGreaterThan(0);
  }, 120_000);

  it("an image part is refused with a message the user can read", async () => {
    const err = await generateText({
      model: provider()(cluster.model!),
      messages: [{ role: "user", content: [{ type: "text", text: "What is this?" }, { type: "image", image: PIXEL, mediaType: "image/png" }] }],
      maxRetries: 0,
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    expect((err as APICallError).statusCode).toBe(400);
    expect((err as APICallError).message).toMatch(/this model does not take images/);
  }, 60_000);
});

describe("LangChain (@langchain/openai ChatOpenAI)", () => {
  const chat = (options: { maxTokens?: number; n?: number; logprobs?: boolean; topLogprobs?: number; model?: string } = {}) =>
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

  it("withStructuredOutput by function calling (a forced tool call) returns an object that satisfies the schema", async () => {
    // Room for the most calls the engine allows (8): LangChain sends no parallel_tool_calls, and the random weights
    // call on until the grammar's limit. (JSON mode is not shown here: json_object bounds no string, so random weights
    // may write one string until max_tokens, and a cut answer is incomplete JSON, as on OpenAI.)
    const calling = await chat({ maxTokens: 1000 }).withStructuredOutput(WEATHER_PARAMETERS, { name: "weather", method: "functionCalling" }).invoke("Weather in Oslo?");
    expect(schemaViolations(WEATHER_PARAMETERS, calling)).toEqual([]);
  }, 60_000);

  it("stop ends the answer before the stop, which is never sent, streamed or not", async () => {
    const { stop, expected } = await stopCase(24);
    expect((await chat({ maxTokens: 24 }).invoke(PROMPT, { stop: [stop] })).content).toBe(expected);
    let text = "";
    for await (const chunk of await chat({ maxTokens: 24 }).stream(PROMPT, { stop: [stop] })) text += String(chunk.content);
    expect(text).toBe(expected);
  }, 60_000);

  it("bindTools with a named tool_choice gives tool_calls; the ToolMessage turn is answered", async () => {
    const weather = { type: "function" as const, function: { name: "get_weather", description: "Current weather in a city", parameters: WEATHER_PARAMETERS } };
    const question = new HumanMessage("What is the weather in Oslo?");
    const first = await chat({ maxTokens: 200 }).bindTools([weather], { tool_choice: "get_weather" }).invoke([question]);
    expect(first.tool_calls).toHaveLength(1);
    const call = first.tool_calls![0]!;
    expect(call.name).toBe("get_weather");
    expect(schemaViolations(WEATHER_PARAMETERS, call.args)).toEqual([]);
    expect(first.response_metadata.finish_reason).toBe("tool_calls");
    const second = await chat({ maxTokens: 16 })
      .bindTools([weather], { tool_choice: "none" })
      .invoke([question, first as AIMessage, new ToolMessage({ tool_call_id: call.id!, content: JSON.stringify({ temperature: 4, unit: "c" }) })]);
    expect(second.tool_calls ?? []).toEqual([]);
    expect(String(second.content).length).toBeGreaterThan(0);
  }, 120_000);

  it("n: 2 gives two generations, with usage summed over them", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], maxTokens: 6 });
    const result = await chat({ maxTokens: 6, n: 2 }).generate([[new HumanMessage(PROMPT)]]);
    expect(result.generations[0]!.map((g) => g.text)).toEqual([reference.text, reference.text]);
    expect(result.llmOutput?.tokenUsage).toMatchObject({ promptTokens: reference.promptTokens, completionTokens: 2 * reference.completionTokens });
  }, 60_000);

  it("logprobs: the tokens spell the answer, each with its alternatives", async () => {
    const answer = await chat({ maxTokens: 8, logprobs: true, topLogprobs: 3 }).invoke(PROMPT);
    const content = answer.response_metadata.logprobs.content as { token: string; logprob: number; top_logprobs: { token: string; logprob: number }[] }[];
    expect(content).toHaveLength(8);
    expect(content.map((t) => t.token).join("")).toBe(answer.content);
    for (const t of content) {
      expect(t.top_logprobs).toHaveLength(3);
      expect(t.top_logprobs[0]!.logprob).toBeCloseTo(t.logprob, 4); // greedy: the chosen token is the likeliest
    }
  }, 60_000);

  it("errors show Tessera's message: a model not served, an image part", async () => {
    const missing = await chat({ model: "no-such-model" }).invoke(PROMPT).catch((e: unknown) => e);
    expect((missing as Error).message).toMatch(new RegExp(`available models: ${cluster.model}`));
    const image = await chat()
      .invoke([new HumanMessage({ content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: `data:image/png;base64,${PIXEL.toString("base64")}` } }] })])
      .catch((e: unknown) => e);
    expect((image as Error).message).toMatch(/this model does not take images/);
  }, 60_000);
});

describe("the openai client, chat rows not covered elsewhere", () => {
  const client = () => new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });

  it("stop ends the answer before the stop, which is never sent, streamed or not, with finish_reason stop", async () => {
    const { stop, expected } = await stopCase(24);
    const messages = [{ role: "user" as const, content: PROMPT }];
    const whole = await client().chat.completions.create({ model: cluster.model!, messages, max_tokens: 24, temperature: 0, stop: [stop] });
    expect(whole.choices[0]).toMatchObject({ message: { content: expected }, finish_reason: "stop" });
    const stream = await client().chat.completions.create({ model: cluster.model!, messages, max_tokens: 24, temperature: 0, stop, stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(expected);
    expect(finish).toBe("stop");
  }, 60_000);

  it("n: 2 gives two choices, streamed and not, usage counting the prompt once", async () => {
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: PROMPT }], maxTokens: 6 });
    const messages = [{ role: "user" as const, content: PROMPT }];
    const whole = await client().chat.completions.create({ model: cluster.model!, messages, max_tokens: 6, temperature: 0, n: 2 });
    expect(whole.choices.map((c) => [c.index, c.message.content])).toEqual([
      [0, reference.text],
      [1, reference.text],
    ]);
    expect(whole.usage).toMatchObject({ prompt_tokens: reference.promptTokens, completion_tokens: 2 * reference.completionTokens });
    const stream = await client().chat.completions.create({ model: cluster.model!, messages, max_tokens: 6, temperature: 0, n: 2, stream: true });
    const texts = ["", ""];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? "";
    expect(texts).toEqual([reference.text, reference.text]);
  }, 60_000);

  it("models.retrieve gives the model with a real created time; an image part is a 400 naming where it is", async () => {
    const model = await client().models.retrieve(cluster.model!);
    expect(model).toMatchObject({ id: cluster.model, object: "model", owned_by: "tessera" });
    expect(Math.abs(model.created - Date.now() / 1000)).toBeLessThan(3600);
    const err = await client()
      .chat.completions.create({
        model: cluster.model!,
        messages: [{ role: "user", content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: `data:image/png;base64,${PIXEL.toString("base64")}` } }] }],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("messages.0.content.1");
    expect((err as Error).message).toMatch(/this model does not take images/);
  }, 60_000);
});

describe("tessera chat without a prompt", () => {
  it("chats turn by turn, sending the whole history each time, the --system prompt first", async () => {
    const system = "Answer briefly.";
    const args = ["chat", "--url", cluster.url, "--system", system, "--temperature", "0", "--top-p", "1", "--max-tokens", "8", "--seed", "3"];
    const child = spawn(process.execPath, [TESSERA_BIN, ...args], {
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
    const first = await greedyReference({
      modelPath,
      messages: [
        { role: "system", content: system },
        { role: "user", content: "Tell me about rivers." },
      ],
      maxTokens: 8,
    });
    const second = await greedyReference({
      modelPath,
      messages: [
        { role: "system", content: system },
        { role: "user", content: "Tell me about rivers." },
        { role: "assistant", content: first.text },
        { role: "user", content: "And about stones?" },
      ],
      maxTokens: 8,
    });
    expect(stdout).toBe(`${first.text}\n${second.text}\n`);
  }, 60_000);
});
