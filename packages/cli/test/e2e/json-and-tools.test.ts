import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type Cluster, makeTinyModel, schemaViolations, startCluster } from "@tessera/testkit";

/**
 * Issue 11, JSON mode and tools, on real processes: a coordinator and a daemon running the embedded llama.cpp engine
 * on a random-weight model, driven by the official `openai` client. The weights know nothing; the grammar alone makes
 * the answers valid.
 */
let dir: string;
let cluster: Cluster;
let client: OpenAI;

const RECIPE = {
  type: "object",
  properties: {
    title: { type: "string", maxLength: 16 },
    servings: { type: "integer" },
    vegetarian: { type: "boolean" },
    course: { enum: ["starter", "main", "dessert"] },
    steps: { type: "array", items: { type: "string", maxLength: 8 }, minItems: 1, maxItems: 3 },
  },
  required: ["title", "servings", "vegetarian", "course", "steps"],
  additionalProperties: false,
};
const WEATHER = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 }, unit: { enum: ["c", "f"] } }, required: ["city", "unit"], additionalProperties: false },
    strict: true,
  },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-e2e-json-"));
  const modelPath = join(dir, "tessera-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 42, vocab: "spm" });
  cluster = await startCluster({ nodes: 1, modelPath });
  client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("response_format with the openai client on the embedded engine", () => {
  it("json_schema (strict): the answer parses and validates, streaming and not", async () => {
    const response_format = { type: "json_schema" as const, json_schema: { name: "recipe", schema: RECIPE, strict: true } };
    const messages = [{ role: "user" as const, content: "A recipe, please." }];
    const whole = await client.chat.completions.create({ model: cluster.model!, messages, response_format, max_tokens: 300, seed: 1 });
    expect(whole.choices[0]!.finish_reason).toBe("stop");
    expect(schemaViolations(RECIPE, JSON.parse(whole.choices[0]!.message.content!))).toEqual([]);

    const stream = await client.chat.completions.create({ model: cluster.model!, messages, response_format, max_tokens: 300, seed: 2, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(schemaViolations(RECIPE, JSON.parse(text))).toEqual([]);
  }, 120_000);

  it("a strict schema the engine cannot enforce is refused by name, as a 400", async () => {
    const schema = { type: "object", properties: { n: { type: "integer", minimum: 1 } }, required: ["n"], additionalProperties: false };
    const err = await client.chat.completions
      .create({ model: cluster.model!, messages: [{ role: "user", content: "n?" }], response_format: { type: "json_schema", json_schema: { name: "n", schema, strict: true } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).message).toMatch(/response_format\.json_schema\.schema: minimum/);
  }, 60_000);

  it("a schema nested too deep is refused at the edge, naming where", async () => {
    let schema: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 12; i++) schema = { type: "object", properties: { x: schema } };
    const err = await client.chat.completions
      .create({ model: cluster.model!, messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "deep", schema } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toMatch(/^response_format\.json_schema\.schema(\.properties\.x)+$/);
  }, 60_000);
});

describe("tools with the openai client on the embedded engine", () => {
  it("a round trip: the model calls the tool, the client answers with a tool message, the model answers", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Oslo?" }];
    const first = await client.chat.completions.create({ model: cluster.model!, messages, tools: [WEATHER], tool_choice: "required", max_tokens: 200, seed: 3 });
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    const call = choice.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(schemaViolations(WEATHER.function.parameters, JSON.parse(call.function.arguments))).toEqual([]);
    expect(first.usage!.completion_tokens).toBeGreaterThan(0);

    messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temperature: 4, unit: "c" }) });
    const second = await client.chat.completions.create({ model: cluster.model!, messages, tools: [WEATHER], tool_choice: "none", max_tokens: 24, seed: 4 });
    expect(second.choices[0]!.message.tool_calls ?? []).toEqual([]);
    expect(second.choices[0]!.message.content!.length).toBeGreaterThan(0);
  }, 120_000);

  it("streams a named call as OpenAI does, and the client's accumulated arguments validate", async () => {
    const stream = await client.chat.completions.create({
      model: cluster.model!,
      messages: [{ role: "user", content: "Weather?" }],
      tools: [WEATHER],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      max_tokens: 200,
      stream: true,
    });
    const calls: { id?: string; name?: string; arguments: string }[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const d of chunk.choices[0]?.delta.tool_calls ?? []) {
        const c = (calls[d.index] ??= { arguments: "" });
        c.id ??= d.id;
        c.name ??= d.function?.name;
        c.arguments += d.function?.arguments ?? "";
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe("tool_calls");
    expect(calls).toHaveLength(1);
    expect(calls[0]!.id).toMatch(/^call_/);
    expect(calls[0]!.name).toBe("get_weather");
    expect(schemaViolations(WEATHER.function.parameters, JSON.parse(calls[0]!.arguments))).toEqual([]);
  }, 120_000);

  it("a call cut short by max_tokens comes back as OpenAI's does: tool_calls as far as written, finish_reason length", async () => {
    const messages = [{ role: "user" as const, content: "Weather?" }];
    const request = { model: cluster.model!, messages, tools: [WEATHER], tool_choice: "required" as const, max_tokens: 30, seed: 5 };
    const whole = await client.chat.completions.create(request);
    const choice = whole.choices[0]!;
    expect(choice.finish_reason).toBe("length");
    expect(choice.message.content).toBeNull(); // never the engine's call syntax as text
    const call = choice.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(() => JSON.parse(call.function.arguments)).toThrow(); // cut: a prefix of the arguments' JSON
    expect(whole.usage!.completion_tokens).toBe(30);
    const stream = await client.chat.completions.create({ ...request, stream: true });
    let name = "";
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      name += chunk.choices[0]?.delta.tool_calls?.[0]?.function?.name ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect({ name, text, finish }).toEqual({ name: "get_weather", text: "", finish: "length" });
  }, 60_000);

  it("a tool_choice naming a tool that is not offered is a 400 naming tool_choice", async () => {
    const err = await client.chat.completions
      .create({ model: cluster.model!, messages: [{ role: "user", content: "x" }], tools: [WEATHER], tool_choice: { type: "function", function: { name: "get_time" } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("tool_choice.function.name");
  }, 60_000);
});
