import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage, Sampling, StreamPart } from "@tessera/protocol";
import { buildLlamaServer, makeTinyModel, schemaViolations, startLlamaServer, type RunningLlamaServer, WEATHER_TOOL, TIME_TOOL, CITY_SCHEMA } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, GenerateRequest } from "../../src/backends/adapter.js";
import { createEmbeddedBackend, type EmbeddedBackend } from "../../src/backends/embedded/embedded-backend.js";
import { collect, deltas, tokensOf, textOf, promptOf, callsOf, tail } from "./stream-parts.js";
import { createLlamaServerAdapter } from "../../src/backends/llama-server/llama-server-adapter.js";

/**
 * Issue 17 §0 for tool chats and JSON mode (constrained/design.md): the same GGUF on the embedded engine and on a REAL
 * llama-server (built by the testkit from the llama.cpp sources node-llama-cpp ships) writes tools Tessera's one way,
 * renders the same prompt ids, and under the one grammar text gives the same greedy tokens, the same text and the same
 * calls; failovers between the two join exactly where llama-server can continue, and are declined where it cannot.
 * Without cmake or a C++ compiler the tests skip with a printed notice; under CI=true the build is mandatory.
 */
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const ASK: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "What is the weather in Oslo?" },
];
/** A chat that already called a tool and got its result. */
const HISTORY: ChatMessage[] = [
  ...ASK,
  { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo","unit":"c"}' } }] },
  { role: "tool", content: '{"temperature": 4}', tool_call_id: "call_1" },
];
const N = 64;

const CHATS: Array<{ name: string; messages: ChatMessage[]; sampling: Partial<Sampling> }> = [
  { name: "tool_choice required", messages: ASK, sampling: { tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: "required" } },
  { name: "a named function, one call", messages: ASK, sampling: { tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: { type: "function", function: { name: "get_weather" } }, parallel_tool_calls: false } },
  { name: "tool_choice auto", messages: ASK, sampling: { tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: "auto" } },
  { name: "a tool call and its result in the history", messages: HISTORY, sampling: { tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: "auto" } },
  { name: "response_format json_schema", messages: [{ role: "user", content: "Describe a city." }], sampling: { response_format: { type: "json_schema", json_schema: { name: "city", schema: CITY_SCHEMA, strict: true } } } },
];

let skipReason: string | undefined;
let dir: string;
let server: RunningLlamaServer;
let llamaServer: BackendAdapter;
let embedded: EmbeddedBackend;

beforeAll(async () => {
  const build = await buildLlamaServer();
  if (build.binaryPath === undefined) {
    skipReason = build.reason;
    process.stderr.write(`\n*** canonical-tools-real.test.ts SKIPPED: ${build.reason} ***\n\n`);
    return;
  }
  dir = mkdtempSync(join(tmpdir(), "tessera-canonical-tools-real-"));
  const modelPath = join(dir, "chatml.gguf");
  await makeTinyModel({ path: modelPath, seed: 13, vocab: "spm", chatTemplate: CHATML });
  server = await startLlamaServer({ binaryPath: build.binaryPath, modelPath, logFile: join(dir, "llama-server.log") });
  llamaServer = createLlamaServerAdapter({ baseURL: server.baseURL });
  embedded = createEmbeddedBackend({ modelPath, threads: 1, maxSequences: 1 });
}, 60 * 60_000);

afterAll(async () => {
  await server?.stop();
  await embedded?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const request = (model: string, chat: (typeof CHATS)[number], patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
  model,
  messages: chat.messages,
  sampling: { max_tokens: N, temperature: 0, top_p: 1, ...chat.sampling },
  ...patch,
});
const onServer = (chat: (typeof CHATS)[number], patch?: Partial<GenerateRequest>) => collect(llamaServer.doStream(request(server.modelId, chat, patch)));
const onEmbedded = (chat: (typeof CHATS)[number], patch?: Partial<GenerateRequest>) => collect(embedded.doStream(request("chatml", chat, patch)));

async function detokenize(tokens: number[]): Promise<string> {
  const res = await fetch(`${server.baseURL}/detokenize`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tokens }) });
  return ((await res.json()) as { content: string }).content;
}

describe("a constrained chat on the embedded engine and on a real llama-server", () => {
  it.for(CHATS)("$name: the same prompt ids, greedy tokens, text, calls, usage and finish", async (chat, ctx) => {
    if (skipReason) return ctx.skip();
    const a = await onServer(chat, { reportPromptTokens: true });
    const b = await onEmbedded(chat, { reportPromptTokens: true });
    expect(a.find((p) => p.type === "error")).toBeUndefined();
    expect(promptOf(a)).toBeDefined();
    expect(promptOf(a)).toEqual(promptOf(b));
    const [ta, tb] = [tokensOf(a), tokensOf(b)];
    let same = 0;
    while (same < Math.min(ta.length, tb.length) && ta[same] === tb[same]) same++;
    const shape = callsOf(a).length > 0 ? `${callsOf(a).length} call(s)` : `text ${JSON.stringify(textOf(a).slice(0, 40))}`;
    process.stderr.write(`canonical tools, ${chat.name}: ${promptOf(a)!.length} prompt ids equal; ${same}/${tb.length} greedy tokens identical (llama-server ${ta.length}); ${shape}; ${JSON.stringify(tail(a))}\n`);
    expect(ta).toEqual(tb);
    expect(textOf(a)).toBe(textOf(b));
    expect(callsOf(a)).toEqual(callsOf(b));
    expect(tail(a)).toEqual(tail(b));
    if (chat.sampling.tool_choice && chat.sampling.tool_choice !== "auto") expect(callsOf(a).length).toBeGreaterThan(0);
    if (chat.sampling.response_format) expect(schemaViolations(CITY_SCHEMA, JSON.parse(textOf(a)))).toEqual([]);
  });
});

describe("failover between the two on a constrained chat", () => {
  const required = CHATS[0]!;

  it("llama-server → embedded, cut mid-call: the embedded engine continues the call from its ids and the join is exact", async (ctx) => {
    if (skipReason) return ctx.skip();
    const whole = await onServer(required, { reportPromptTokens: true });
    const prompt = promptOf(whole)!;
    const tokens = tokensOf(whole);
    expect(callsOf(whole).length).toBeGreaterThan(0);
    for (const k of [1, 5, Math.floor(tokens.length / 2)]) {
      const rest = await onEmbedded(required, {
        promptTokens: prompt,
        assistantPrefix: await detokenize(tokens.slice(0, k)),
        assistantPrefixTokens: tokens.slice(0, k),
        sampling: { ...request("chatml", required).sampling, max_tokens: tokens.length - k },
      });
      expect(rest.find((p) => p.type === "error")).toBeUndefined();
      expect([...tokens.slice(0, k), ...tokensOf(rest)]).toEqual(tokens);
    }
  });

  it("embedded → llama-server, cut in a text answer of tool_choice auto: llama-server continues under the rest of the grammar and the join is exact", async (ctx) => {
    if (skipReason) return ctx.skip();
    // The history chat's greedy answer is text on this model (the test above prints its shape).
    const chat = CHATS[3]!;
    const whole = await onEmbedded(chat, { reportPromptTokens: true });
    expect(callsOf(whole)).toEqual([]);
    const prompt = promptOf(whole)!;
    const tokens = tokensOf(whole);
    for (const k of [1, 7, 19]) {
      let text = "";
      const head: number[] = [];
      for (const d of deltas(whole)) {
        if (head.length + (d.tokens?.length ?? 0) > k) break;
        text += d.text;
        head.push(...(d.tokens ?? []));
      }
      const rest = await onServer(chat, { promptTokens: prompt, assistantPrefix: text, assistantPrefixTokens: head, sampling: { ...request("", chat).sampling, max_tokens: N - head.length } });
      expect(rest.find((p) => p.type === "error")).toBeUndefined();
      expect([...head, ...tokensOf(rest)]).toEqual(tokens);
      expect(text + textOf(rest)).toBe(textOf(whole));
      expect(tail(rest)).toEqual([{ type: "usage", prompt_tokens: prompt.length + head.length, completion_tokens: N - head.length }, tail(whole)[1]]);
    }
  });

  it("embedded → llama-server, cut mid-call or mid-JSON: llama-server declines with unsupported_parameter before generating", async (ctx) => {
    if (skipReason) return ctx.skip();
    for (const chat of [required, CHATS[4]!]) {
      const whole = await onEmbedded(chat, { reportPromptTokens: true });
      const head = tokensOf(whole).slice(0, 5);
      const rest = await onServer(chat, { promptTokens: promptOf(whole)!, assistantPrefix: await detokenize(head), assistantPrefixTokens: head });
      expect(rest).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringContaining("cannot continue") }]);
    }
  });
});

describe("a constrained answer on a real llama-server, cut short", () => {
  it("by the caller: usage so far and finish cancelled, and the server then serves the same job in full", async (ctx) => {
    if (skipReason) return ctx.skip();
    const json = CHATS[4]!;
    const controller = new AbortController();
    const parts: StreamPart[] = [];
    for await (const p of llamaServer.doStream(request(server.modelId, json, { signal: controller.signal }))) {
      parts.push(p);
      if (p.type === "text-delta") controller.abort();
    }
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    expect(parts.at(-2)).toMatchObject({ type: "usage" });
    const again = await onServer(json);
    expect(tokensOf(again)).toEqual(tokensOf(await onEmbedded(json)));
    expect(again.at(-1)).toEqual({ type: "finish", reason: "stop" });
  });

  it("by max_tokens inside a call: the calls as far as they got, finish length, as on the embedded engine", async (ctx) => {
    if (skipReason) return ctx.skip();
    const named = CHATS[1]!;
    const patch = { sampling: { ...request("", named).sampling, max_tokens: 40 } };
    const [a, b] = [await onServer(named, patch), await onEmbedded(named, patch)];
    expect(callsOf(a).length).toBe(1);
    expect(callsOf(a)).toEqual(callsOf(b));
    expect(tokensOf(a)).toEqual(tokensOf(b));
    expect(tail(a)).toEqual([{ type: "usage", prompt_tokens: promptOf(await onServer(named, { reportPromptTokens: true }))!.length, completion_tokens: 40 }, { type: "finish", reason: "length" }]);
    // Cut inside the arguments: the call is named, its arguments the JSON written so far.
    expect(() => JSON.parse(callsOf(a)[0]!.arguments)).toThrow();
  });
});
