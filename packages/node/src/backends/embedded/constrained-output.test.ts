import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage, Sampling, StreamPart } from "@tessera/protocol";
import { makeTinyModel, schemaViolations, WEATHER_TOOL, TIME_TOOL } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getLlama } from "node-llama-cpp";
import { createEmbeddedBackend } from "./embedded-backend.js";
import { cachedPlanner } from "./output-constraint.js";

/**
 * response_format and tools on the embedded engine, on a random-weight model: whatever it would babble, the grammar
 * makes it schema-valid JSON or a well-formed call.
 */
let dir: string;
let backend: ReturnType<typeof createEmbeddedBackend>;
const MESSAGES: ChatMessage[] = [{ role: "user", content: "Describe a city." }];
const CITY = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 12 },
    population: { type: "integer" },
    coastal: { type: "boolean" },
    kind: { enum: ["town", "city", "village"] },
    districts: { type: "array", items: { type: "string", maxLength: 6 }, maxItems: 3 },
  },
  required: ["name", "population", "coastal", "kind", "districts"],
  additionalProperties: false,
};

async function collect(sampling: Partial<Sampling>, extra: { messages?: ChatMessage[]; assistantPrefix?: string; assistantPrefixTokens?: number[] } = {}): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  const request = { model: "tiny", messages: extra.messages ?? MESSAGES, sampling: { max_tokens: 200, temperature: 0.8, top_p: 1, seed: 3, ...sampling }, ...extra };
  for await (const p of backend.doStream(request)) out.push(p);
  return out;
}
const textOf = (parts: StreamPart[]) => parts.flatMap((p) => (p.type === "text-delta" ? [p.text] : [])).join("");
const finishOf = (parts: StreamPart[]) => parts.find((p) => p.type === "finish");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-constrained-"));
  const path = (await makeTinyModel({ path: join(dir, "tiny.gguf"), seed: 11, vocab: "spm" })).path;
  backend = createEmbeddedBackend({ modelPath: path, threads: 1, maxSequences: 2 });
  await backend.load();
}, 120_000);
afterAll(async () => {
  await backend?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("response_format on the embedded engine", () => {
  it("json_schema (strict): every seed gives JSON that validates against the schema", async () => {
    for (const seed of [1, 2, 3]) {
      const parts = await collect({ seed, response_format: { type: "json_schema", json_schema: { name: "city", schema: CITY, strict: true } } });
      expect(finishOf(parts)).toEqual({ type: "finish", reason: "stop" });
      const value: unknown = JSON.parse(textOf(parts));
      expect(schemaViolations(CITY, value)).toEqual([]);
    }
  }, 60_000);

  it("a strict schema with a keyword no grammar can enforce is refused, naming it; the same schema not strict is answered", async () => {
    const schema = { type: "object", properties: { n: { type: "integer", minimum: 3 } }, required: ["n"] };
    const refused = await collect({ response_format: { type: "json_schema", json_schema: { name: "n", schema, strict: true } } });
    expect(refused.at(-1)).toMatchObject({ type: "error", code: "bad_request", message: expect.stringContaining("minimum (at properties.n.minimum)") });
    const loose = await collect({ response_format: { type: "json_schema", json_schema: { name: "n", schema } } });
    expect(Number.isInteger((JSON.parse(textOf(loose)) as { n: unknown }).n)).toBe(true);
  }, 60_000);

  it("json_object: the answer starts as a JSON object and, when it ends on its own, is one", async () => {
    const parts = await collect({ max_tokens: 400, response_format: { type: "json_object" } });
    const text = textOf(parts);
    expect(text.trimStart().startsWith("{")).toBe(true);
    if (finishOf(parts)?.type === "finish" && (finishOf(parts) as { reason: string }).reason === "stop") {
      const value: unknown = JSON.parse(text);
      expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
    }
  }, 60_000);

  it("a continuation (failover) stays inside the grammar: prefix + continuation is schema-valid", async () => {
    const format = { type: "json_schema" as const, json_schema: { name: "city", schema: CITY, strict: true } };
    const first = await collect({ response_format: format });
    const deltas = first.flatMap((p) => (p.type === "text-delta" ? [p] : []));
    const cut = Math.floor(deltas.length / 2);
    const prefix = deltas.slice(0, cut);
    const rest = await collect(
      { response_format: format, seed: 99 },
      { assistantPrefix: prefix.map((d) => d.text).join(""), assistantPrefixTokens: prefix.flatMap((d) => d.tokens ?? []) },
    );
    const whole = prefix.map((d) => d.text).join("") + textOf(rest);
    expect(schemaViolations(CITY, JSON.parse(whole))).toEqual([]);
  }, 60_000);
});

describe("tools on the embedded engine", () => {
  it("tool_choice required: one tool-calls part, each call a known tool with arguments valid for it, then finish stop", async () => {
    for (const seed of [1, 2, 3]) {
      const parts = await collect({ seed, tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: "required" });
      const calls = parts.find((p) => p.type === "tool-calls");
      expect(calls, JSON.stringify(parts.slice(-3))).toBeDefined();
      expect(textOf(parts)).toBe("");
      for (const call of calls!.type === "tool-calls" ? calls!.calls : []) {
        expect(call.id).toMatch(/^call_/);
        const tool = [WEATHER_TOOL, TIME_TOOL].find((t) => t.function.name === call.function.name)!;
        expect(tool).toBeDefined();
        expect(schemaViolations(tool.function.parameters, JSON.parse(call.function.arguments))).toEqual([]);
      }
      expect(finishOf(parts)).toEqual({ type: "finish", reason: "stop" });
    }
  }, 60_000);

  it("a named tool_choice calls that tool only, once when parallel calls are off", async () => {
    const parts = await collect({ tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: { type: "function", function: { name: "get_time" } }, parallel_tool_calls: false });
    const calls = parts.find((p) => p.type === "tool-calls");
    expect(calls?.type === "tool-calls" && calls.calls.map((c) => c.function.name)).toEqual(["get_time"]);
    // The call's tokens are reported on the part, so the coordinator counts them as it counts text.
    expect(calls?.type === "tool-calls" && calls.tokens!.length).toBe((parts.find((p) => p.type === "usage") as { completion_tokens: number }).completion_tokens);
  }, 60_000);

  it("tool_choice none: plain text, never a call; auto: either text that does not start a call, or a well-formed call", async () => {
    const none = await collect({ max_tokens: 24, tools: [WEATHER_TOOL], tool_choice: "none" });
    expect(none.some((p) => p.type === "tool-calls")).toBe(false);
    expect(textOf(none).length).toBeGreaterThan(0);
    for (const seed of [1, 2, 3, 4]) {
      const auto = await collect({ seed, max_tokens: 60, tools: [WEATHER_TOOL], tool_choice: "auto" });
      const calls = auto.find((p) => p.type === "tool-calls");
      if (calls?.type === "tool-calls") expect(calls.calls[0]!.function.name).toBe("get_weather");
      else expect(textOf(auto).startsWith("<")).toBe(false);
    }
  }, 60_000);

  it("a history with a call and its result is accepted and answered", async () => {
    const messages: ChatMessage[] = [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo","unit":"c"}' } }] },
      { role: "tool", content: '{"temp": 4}', tool_call_id: "call_1" },
    ];
    const parts = await collect({ max_tokens: 16, tools: [WEATHER_TOOL], tool_choice: "none" }, { messages });
    expect(textOf(parts).length).toBeGreaterThan(0);
    expect(finishOf(parts)?.type).toBe("finish");
  }, 60_000);
});

describe("grammar plans are compiled once per request shape", () => {
  it("returns the same compiled grammar for the same schema, a new one for another, and keeps at most `size`", async () => {
    const llama = await getLlama({ gpu: false, build: "never" });
    const plan = cachedPlanner(llama, 2);
    const format = (name: string) => ({ max_tokens: 8, temperature: 0, top_p: 1, response_format: { type: "json_schema" as const, json_schema: { name, schema: CITY } } });
    const a = await plan(format("a"));
    expect(await plan(format("a"))).toBe(a);
    const b = await plan(format("b"));
    expect(b).not.toBe(a);
    await plan(format("c")); // evicts a (the least recently used)
    expect(await plan(format("b"))).toBe(b);
    expect(await plan(format("a"))).not.toBe(a);
    expect(await plan({ tools: [WEATHER_TOOL], tool_choice: "none" })).toEqual({ ok: true, plan: { kind: "free" } });
  }, 60_000);
});
