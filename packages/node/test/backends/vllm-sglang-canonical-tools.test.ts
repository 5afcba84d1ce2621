import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage, Sampling, StreamPart } from "@tessera/protocol";
import { CITY_SCHEMA, FakeSglangScoring, FakeVllmScoring, type IdLevelModel, TIME_TOOL, WEATHER_TOOL, loadIdLevelModel, makeTinyModel, schemaViolations } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendAdapter, GenerateRequest } from "../../src/backends/adapter.js";
import { createEmbeddedBackend, type EmbeddedBackend } from "../../src/backends/embedded/embedded-backend.js";
import { createSglangAdapter } from "../../src/backends/sglang/sglang-adapter.js";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";
import { collect, deltas, tokensOf, textOf, promptOf, callsOf, tail } from "./stream-parts.js";
import { TEXT_BRANCH_REST_GRAMMAR } from "../../src/constrained/output-grammar.js";

/**
 * Issue 17 §0 on vLLM and SGLang (constrained/design.md): a tool chat or a JSON chat runs Tessera's one way there too:
 * the tool prompt rendered to ids by the server (vLLM `POST /tokenize`, SGLang `return_prompt_token_ids`), reported,
 * and the answer under the one grammar text (vLLM `structured_outputs.grammar` on `/v1/completions`, SGLang
 * `sampling_params.ebnf` on `/generate`). Against the id-level fakes on a REAL model (node-llama-cpp on a testkit
 * ChatML GGUF), which compile the grammar with node-llama-cpp, beside the embedded engine on the same file.
 */
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const MODEL = "chatml";
const ASK: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "What is the weather in Oslo?" },
];
const HISTORY: ChatMessage[] = [
  ...ASK,
  { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo","unit":"c"}' } }] },
  { role: "tool", content: '{"temperature": 4}', tool_call_id: "call_1" },
];
const N = 64;
type Chat = { name: string; messages: ChatMessage[]; sampling: Partial<Sampling> };
const REQUIRED: Chat = { name: "tool_choice required", messages: ASK, sampling: { tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: "required" } };
const AUTO: Chat = { name: "tool_choice auto", messages: ASK, sampling: { tools: [WEATHER_TOOL, TIME_TOOL], tool_choice: "auto" } };
const JSON_CHAT: Chat = {
  name: "response_format json_schema",
  messages: [{ role: "user", content: "Describe a city." }],
  sampling: { response_format: { type: "json_schema", json_schema: { name: "city", schema: CITY_SCHEMA, strict: true } } },
};
const CHATS: Chat[] = [
  REQUIRED,
  AUTO,
  { name: "a tool call and its result in the history", messages: HISTORY, sampling: AUTO.sampling },
  JSON_CHAT,
];

let dir: string;
let model: IdLevelModel;
let embedded: EmbeddedBackend;
let vllmFake: FakeVllmScoring;
let sglangFake: FakeSglangScoring;
const logged: string[] = [];
let nodes: Array<{ name: "vllm" | "sglang"; adapter: BackendAdapter; generations: () => Array<Record<string, unknown>> }>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-vllm-sglang-tools-"));
  const modelPath = join(dir, "chatml.gguf");
  await makeTinyModel({ path: modelPath, seed: 13, vocab: "spm", chatTemplate: CHATML });
  model = await loadIdLevelModel({ modelPath, modelId: MODEL });
  embedded = createEmbeddedBackend({ modelPath, threads: 1, maxSequences: 1 });
  vllmFake = await FakeVllmScoring.start({ model });
  sglangFake = await FakeSglangScoring.start({ model });
  const log = (_level: string, message: string) => void logged.push(message);
  nodes = [
    { name: "vllm", adapter: createVllmAdapter({ instances: [{ host: vllmFake.url, model: MODEL }], log }), generations: () => vllmFake.requests.filter((r) => r.path === "/v1/completions" || r.path === "/v1/chat/completions").map((r) => r.body as Record<string, unknown>) },
    { name: "sglang", adapter: createSglangAdapter({ baseURL: sglangFake.url, log }), generations: () => sglangFake.requests.filter((r) => r.path === "/generate" || (r.path === "/v1/chat/completions" && (r.body as { max_tokens?: unknown }).max_tokens !== 1)).map((r) => r.body as Record<string, unknown>) },
  ];
}, 120_000);

afterAll(async () => {
  await vllmFake?.close();
  await sglangFake?.close();
  await embedded?.close();
  await model?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const errorOf = (parts: StreamPart[]) => parts.find((p): p is Extract<StreamPart, { type: "error" }> => p.type === "error");
const request = (chat: Chat, patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
  model: MODEL,
  messages: chat.messages,
  sampling: { max_tokens: N, temperature: 0, top_p: 1, ...chat.sampling },
  ...patch,
});
/** The grammar a generation request carried, in either server's field. */
const grammarOf = (body: Record<string, unknown> | undefined) =>
  (body?.structured_outputs as { grammar?: string } | undefined)?.grammar ?? (body?.sampling_params as { ebnf?: string } | undefined)?.ebnf;
const promptIdsOf = (body: Record<string, unknown> | undefined) => (body?.prompt ?? body?.input_ids) as number[] | undefined;

describe.each(["vllm", "sglang"] as const)("%s runs tool and JSON chats Tessera's way", (name) => {
  const node = () => nodes.find((n) => n.name === name)!;

  it.for(CHATS)("$name: the canonical prompt ids reported, and the embedded engine's tokens, text, calls, usage and finish", async (chat) => {
    const a = await collect(node().adapter.doStream(request(chat, { reportPromptTokens: true })));
    const b = await collect(embedded.doStream(request(chat, { reportPromptTokens: true })));
    expect(errorOf(a)).toBeUndefined();
    expect(promptOf(a)).toBeDefined();
    expect(promptOf(a)).toEqual(promptOf(b));
    expect(tokensOf(a)).toEqual(tokensOf(b));
    expect(textOf(a)).toBe(textOf(b));
    expect(callsOf(a)).toEqual(callsOf(b));
    expect(tail(a)).toEqual(tail(b));
    const sent = node().generations().at(-1);
    expect(promptIdsOf(sent)).toEqual(promptOf(a));
    expect(grammarOf(sent)).toMatch(/^root ::= /);
    if (chat.sampling.tool_choice === "required") expect(callsOf(a).length).toBeGreaterThan(0);
    if (chat.sampling.response_format) expect(schemaViolations(CITY_SCHEMA, JSON.parse(textOf(a)))).toEqual([]);
    // Whole answers give the same as streams.
    const whole = await node().adapter.doGenerate(request(chat));
    expect(whole.text).toBe(textOf(b));
    expect((whole.toolCalls ?? []).map((c) => c.function)).toEqual(callsOf(b));
  });

  it("tool turns without a callable tool (tool_choice none): free text on the tool prompt's ids, reported, no grammar", async () => {
    const none: Chat = { name: "none", messages: HISTORY, sampling: { tools: [WEATHER_TOOL], tool_choice: "none" } };
    const a = await collect(node().adapter.doStream(request(none, { reportPromptTokens: true })));
    const b = await collect(embedded.doStream(request(none, { reportPromptTokens: true })));
    expect(errorOf(a)).toBeUndefined();
    expect(promptOf(a)).toEqual(promptOf(b));
    const sent = node().generations().at(-1);
    expect(promptIdsOf(sent)).toEqual(promptOf(a));
    expect(grammarOf(sent)).toBeUndefined();
    // The fake's own greedy decoding on those ids (its logits path, not the embedded sampler's, so compared to itself).
    expect(tokensOf(a)).toEqual((await model.generate(promptOf(a)!, N, false)).tokens);
  });

  it("a continuation that carries the first node's ids runs exactly those, then the prefix's, under the rest of the text branch; the join is exact", async () => {
    const first = await collect(embedded.doStream(request(AUTO, { reportPromptTokens: true })));
    expect(callsOf(first)).toEqual([]);
    const prompt = promptOf(first)!;
    const pieces = deltas(first);
    const k = Math.floor(pieces.length / 2);
    const prefix = pieces.slice(0, k);
    const rest = await collect(
      node().adapter.doStream(
        request(AUTO, {
          reportPromptTokens: true,
          promptTokens: prompt,
          // The coordinator gives a continuation what is left of the budget.
          sampling: { max_tokens: N - prefix.flatMap((d) => d.tokens ?? []).length, temperature: 0, top_p: 1, ...AUTO.sampling },           assistantPrefix: prefix.map((d) => d.text).join(""),
          assistantPrefixTokens: prefix.flatMap((d) => d.tokens ?? []),
        }),
      ),
    );
    expect(errorOf(rest)).toBeUndefined();
    expect(promptOf(rest)).toBeUndefined(); // carried ids are the first node's to report
    const sent = node().generations().at(-1);
    expect(promptIdsOf(sent)).toEqual([...prompt, ...prefix.flatMap((d) => d.tokens ?? [])]);
    expect(grammarOf(sent)).toBe(TEXT_BRANCH_REST_GRAMMAR);
    expect(textOf(rest)).toBe(textOf(first).slice(prefix.map((d) => d.text).join("").length));
    expect(tokensOf(rest)).toEqual(tokensOf(first).slice(prefix.flatMap((d) => d.tokens ?? []).length));
  });

  it("a prefix inside a call or a JSON answer is declined with unsupported_parameter, before any generation", async () => {
    const before = node().generations().length;
    const call = await collect(node().adapter.doStream(request(REQUIRED, { promptTokens: [1, 2, 3], assistantPrefix: "<tool_call>[", assistantPrefixTokens: [5, 6] })));
    expect(call).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringContaining("cannot continue a tool call") }]);
    const json = await collect(node().adapter.doStream(request(JSON_CHAT, { assistantPrefix: '{"name": "', assistantPrefixTokens: [5, 6] })));
    expect(json).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringContaining("cannot continue a response_format answer") }]);
    await expect(node().adapter.doGenerate(request(JSON_CHAT, { assistantPrefix: '{"name": "' }))).rejects.toMatchObject({ code: "unsupported_parameter" });
    // Log-probabilities are not read under a grammar, as on the embedded engine and llama-server.
    const logprobs = await collect(node().adapter.doStream(request(REQUIRED, { sampling: { max_tokens: N, temperature: 0, top_p: 1, logprobs: true, ...REQUIRED.sampling } })));
    expect(logprobs).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.stringContaining("logprobs") }]);
    expect(node().generations().length).toBe(before);
  });

  it("a text-branch prefix known only as text is tokenised by the server and appended to the ids", async () => {
    const first = await collect(embedded.doStream(request(AUTO, { reportPromptTokens: true })));
    const prompt = promptOf(first)!;
    const prefixText = deltas(first).slice(0, 3).map((d) => d.text).join("");
    const rest = await collect(node().adapter.doStream(request(AUTO, { promptTokens: prompt, assistantPrefix: prefixText })));
    expect(errorOf(rest)).toBeUndefined();
    const sent = node().generations().at(-1);
    expect(promptIdsOf(sent)).toEqual([...prompt, ...model.tokenize(prefixText, false)]);
    expect(grammarOf(sent)).toBe(TEXT_BRANCH_REST_GRAMMAR);
  });

  it("cancelling mid-answer ends with what was held, usage so far and cancelled", async () => {
    const controller = new AbortController();
    const parts: StreamPart[] = [];
    for await (const p of node().adapter.doStream(request(AUTO, { signal: controller.signal }))) {
      parts.push(p);
      if (p.type === "text-delta") controller.abort();
    }
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    expect(parts.at(-2)).toMatchObject({ type: "usage" });
    expect(errorOf(parts)).toBeUndefined();
  });

  it("a server that cannot render the prompt ids (vLLM without /tokenize, SGLang before 0.5.13) gets the job its native way, without ids", async () => {
    const real = node().adapter;
    // vLLM: /tokenize answered 404 (not vLLM's server); SGLang: no prompt_token_ids in the chat answer.
    const fetch = (async (input: string | URL | Request, init?: RequestInit) =>
      new URL(String(input)).pathname === "/tokenize" ? new Response("Not Found", { status: 404 }) : globalThis.fetch(input, init)) as typeof globalThis.fetch;
    const adapter = name === "vllm" ? createVllmAdapter({ instances: [{ host: vllmFake.url, model: MODEL }], fetch }) : real;
    if (name === "sglang") sglangFake.fault = "no-prompt-token-ids";
    try {
      const parts = await collect(adapter.doStream(request(REQUIRED, { reportPromptTokens: true })));
      expect(promptOf(parts)).toBeUndefined();
      const sent = node().generations().at(-1)!;
      expect(sent.tools).toEqual([WEATHER_TOOL, TIME_TOOL]);
      expect(grammarOf(sent)).toBeUndefined();
    } finally {
      sglangFake.fault = undefined;
    }
  });

  it.for(name === "vllm" ? ["http"] : ["http", "stream"])("a server that refuses the grammar (%s) gets the job its native way, without prompt ids, and it is logged once", async (how) => {
    const setRefusal = (on: boolean) => (name === "vllm" ? (vllmFake.refuseGrammar = on) : (sglangFake.refuseGrammar = on ? (how as "http" | "stream") : false));
    setRefusal(true);
    logged.length = 0;
    const adapter = name === "vllm" ? createVllmAdapter({ instances: [{ host: vllmFake.url, model: MODEL }], log: (_l, m) => void logged.push(m) }) : createSglangAdapter({ baseURL: sglangFake.url, log: (_l, m) => void logged.push(m) });
    try {
      for (let i = 0; i < 2; i++) {
        const parts = await collect(adapter.doStream(request(REQUIRED, { reportPromptTokens: true })));
        expect(promptOf(parts)).toBeUndefined();
        // The native route: OpenAI's tools on the chat route (which these id-level fakes do not implement: they refuse it).
        const sent = node().generations().at(-1)!;
        expect(sent.tools).toEqual([WEATHER_TOOL, TIME_TOOL]);
        expect(grammarOf(sent)).toBeUndefined();
        expect(errorOf(parts)?.code).toBe("bad_request");
      }
      expect(logged).toEqual([expect.stringContaining(`${name} at `)]);
    } finally {
      setRefusal(false);
    }
  });
});
