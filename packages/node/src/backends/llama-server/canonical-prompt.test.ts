import type { ChatMessage, StreamPart } from "@tessera/protocol";
import { describe, expect, it } from "vitest";
import { TEXT_BRANCH_REST_GRAMMAR, outputGrammar } from "../../constrained/output-grammar.js";
import { toolPromptMessages } from "../../constrained/tool-prompt.js";
import { EXACT_REPLAY_MAX_TOKENS } from "../exact-replay.js";
import { createLlamaServerAdapter } from "./llama-server-adapter.js";

/**
 * The canonical path's wire traffic, against a stub that answers as llama-server does: `/props` declares the template
 * and special tokens, `/tokenize` turns each character into one id (BOS 1 for `add_special` on a vocabulary that adds
 * it), and the chat runs as `/v1/completions` with an integer-array prompt; `/completion` takes a continuation's replay
 * steps, and streams a constrained answer (tools, JSON mode) as the chunks a test gives. The real server is in
 * test/backends/canonical-prompt-real.test.ts and canonical-tools-real.test.ts.
 */
const TEMPLATE = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";

/** A streamed `/completion` chunk as llama-server sends it: one token's text and id, and the count so far. */
const chunk = (content: string, tokens: number[], predicted: number) => ({ content, tokens, stop: false, tokens_predicted: predicted, tokens_evaluated: 20 });
const last = (predicted: number, stopType: "eos" | "limit") => ({ content: "", tokens: [], stop: true, stop_type: stopType, tokens_predicted: predicted, tokens_evaluated: 20 });

function stub(options: { props?: boolean; stream?: unknown[] } = {}) {
  const calls: Array<{ path: string; body: unknown }> = [];
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    const body = init?.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ path, body });
    const json = (value: unknown, status = 200) => new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
    if ((path === "/props" || path === "/tokenize") && options.props === false) return json({ error: { code: 404, message: "File Not Found", type: "not_found_error" } }, 404);
    if (path === "/props") return json({ chat_template: TEMPLATE, bos_token: "<s>", eos_token: "</s>" });
    if (path === "/tokenize") {
      const { content, add_special } = body as { content: string; add_special: boolean };
      if (content === "<s>") return json({ tokens: [1] });
      return json({ tokens: [...(add_special ? [1] : []), ...[...content].map((c) => c.charCodeAt(0))] });
    }
    if (path === "/completion" && (body as { stream?: boolean }).stream) {
      const sse = (options.stream ?? []).map((c) => `data: ${JSON.stringify(c)}\n\n`).join("");
      return new Response(sse, { headers: { "content-type": "text/event-stream" } });
    }
    if (path === "/completion") return json({ content: "x", tokens: [], stop: true });
    if (path === "/v1/completions" || path === "/v1/chat/completions") {
      const sse = [
        { choices: [{ index: 0, text: "Hi", delta: { content: "Hi" }, finish_reason: null, logprobs: { content: [{ id: 72, token: "Hi", logprob: -0.1, bytes: [], top_logprobs: [] }] } }] },
        { choices: [{ index: 0, text: "", delta: {}, finish_reason: "length" }], usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 } },
      ].map((c) => `data: ${JSON.stringify(c)}\n\n`).join("") + "data: [DONE]\n\n";
      return new Response(sse, { headers: { "content-type": "text/event-stream" } });
    }
    return json({ error: { code: 404, message: "File Not Found" } }, 404);
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
const sampling = { max_tokens: 1, temperature: 0, top_p: 1 };
const WEATHER = { type: "function" as const, function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };
/** The stub's ids of a chat rendered by TEMPLATE: one per character. */
const idsOf = (messages: ChatMessage[]) => [...`${messages.map((m) => `[${m.role}]${m.content}`).join("")}[assistant]`].map((c) => c.charCodeAt(0));

describe("llama-server: canonical prompt", () => {
  it("renders the chat itself, reports the ids first, and runs them as an integer-array prompt on /v1/completions", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling, reportPromptTokens: true }));
    const ids = [1, ...[..."[user]yo[assistant]"].map((c) => c.charCodeAt(0))];
    expect(parts[0]).toEqual({ type: "prompt", tokens: ids });
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "length" });
    const run = calls.find((c) => c.path === "/v1/completions")!;
    // A fresh answer's prompt is evaluated afresh, whatever the slot's cache holds (llama-server-adapter.ts).
    expect(run.body).toMatchObject({ model: "m", prompt: ids, max_tokens: 1, temperature: 0, cache_prompt: false });
    expect(calls.some((c) => c.path === "/v1/chat/completions")).toBe(false);
  });

  it("a continuation replays the prefix into the slot one token at a time, then runs the job's ids followed by the prefix's ids, and reports nothing", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "ignored" }], sampling, promptTokens: [1, 5, 6], assistantPrefix: "Hel", assistantPrefixTokens: [40, 41, 42] }));
    expect(parts.some((p) => p.type === "prompt")).toBe(false);
    expect(calls.map((c) => c.path)).toEqual(["/completion", "/completion", "/completion", "/v1/completions"]);
    const step = { n_predict: 1, temperature: 0, stream: false };
    // The prompt afresh as one batch, then one token more each time from the slot's cache; the last prefix token is
    // left for the continuation itself to evaluate (prefix-replay.ts).
    expect(calls[0]!.body).toEqual({ prompt: [1, 5, 6], cache_prompt: false, ...step });
    expect(calls[1]!.body).toEqual({ prompt: [1, 5, 6, 40], cache_prompt: true, ...step });
    expect(calls[2]!.body).toEqual({ prompt: [1, 5, 6, 40, 41], cache_prompt: true, ...step });
    expect(calls[3]!.body).toMatchObject({ prompt: [1, 5, 6, 40, 41, 42], cache_prompt: true });
  });

  it("a continuation after more than 64 tokens is not replayed: it goes in one batch", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const prefix = Array.from({ length: EXACT_REPLAY_MAX_TOKENS + 1 }, (_, i) => 100 + i);
    await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "ignored" }], sampling, promptTokens: [1, 5, 6], assistantPrefixTokens: prefix }));
    expect(calls.map((c) => c.path)).toEqual(["/v1/completions"]);
    expect(calls[0]!.body).toMatchObject({ prompt: [1, 5, 6, ...prefix] });
  });

  it("a replay the server refuses ends the continuation with the server's error, and nothing else runs", async () => {
    const { fetch: base, calls } = stub();
    const fetch = (async (input: string | URL | Request, init?: RequestInit) =>
      new URL(String(input)).pathname === "/completion" ? (calls.push({ path: "/completion", body: undefined }), new Response(JSON.stringify({ error: { code: 503, message: "Loading model", type: "unavailable_error" } }), { status: 503 })) : base(input, init)) as typeof globalThis.fetch;
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "ignored" }], sampling, promptTokens: [1, 5, 6], assistantPrefixTokens: [40, 41] }));
    expect(parts).toEqual([{ type: "error", code: expect.any(String), message: expect.stringContaining("Loading model") }]);
    expect(calls.map((c) => c.path)).toEqual(["/completion"]);
  });

  it("runs a tool chat as the tool prompt's canonical ids on /completion under the one grammar text, and reads the call as the embedded engine does", async () => {
    const call = '[{"name":"weather","arguments":{"city":"Oslo"}}]';
    const { fetch, calls } = stub({ stream: [chunk("<tool_call>", [60], 1), chunk(call, [61], 2), chunk("\n\n", [62], 3), chunk("\n\n", [62], 4), chunk("\n", [63], 5)] });
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const messages = [{ role: "user" as const, content: "Weather?" }];
    const request = { model: "m", messages, sampling: { ...sampling, max_tokens: 32, tools: [WEATHER], tool_choice: "required" as const }, reportPromptTokens: true };
    const parts = await collect(adapter.doStream(request));
    const ids = [1, ...idsOf(toolPromptMessages(messages, [WEATHER], true))];
    expect(parts[0]).toEqual({ type: "prompt", tokens: ids });
    const run = calls.find((c) => c.path === "/completion")!;
    const grammar = await outputGrammar(request.sampling);
    expect(run.body).toEqual({ prompt: ids, n_predict: 32, temperature: 0, top_p: 1, grammar: grammar.ok && grammar.grammar.kind === "tools" ? grammar.grammar.text : "?", stream: true, cache_prompt: false });
    // The call, whole, with every token it took; the grammar's four newlines end it (the server is then stopped: the
    // fifth chunk is never read).
    expect(parts.slice(1)).toEqual([
      { type: "tool-calls", calls: [{ id: expect.any(String), type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } }], tokens: [60, 61, 62, 62] },
      { type: "usage", prompt_tokens: 20, completion_tokens: 4 },
      { type: "finish", reason: "stop" },
    ]);
    expect(calls.some((c) => c.path.startsWith("/v1/"))).toBe(false);
    expect((await adapter.doGenerate(request)).toolCalls).toEqual([expect.objectContaining({ function: { name: "weather", arguments: '{"city":"Oslo"}' } })]);
  });

  it("runs JSON mode under the schema's grammar on /completion and reports its ids; the end-of-generation token is neither relayed nor counted", async () => {
    const { fetch, calls } = stub({ stream: [chunk("{", [70], 1), chunk('"a": true}', [71], 2), chunk("", [2], 3), last(3, "eos")] });
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const schema = { type: "object", properties: { a: { type: "boolean" } }, required: ["a"] };
    const format = { type: "json_schema" as const, json_schema: { name: "s", schema, strict: true } };
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling: { ...sampling, response_format: format }, reportPromptTokens: true }));
    const ids = [1, ...[..."[user]yo[assistant]"].map((c) => c.charCodeAt(0))];
    expect(parts).toEqual([
      { type: "prompt", tokens: ids },
      { type: "text-delta", text: "{", tokens: [70] },
      { type: "text-delta", text: '"a": true}', tokens: [71] },
      { type: "usage", prompt_tokens: 20, completion_tokens: 2 },
      { type: "finish", reason: "stop" },
    ]);
    const grammar = await outputGrammar({ response_format: format });
    expect(calls.find((c) => c.path === "/completion")!.body).toMatchObject({ prompt: ids, grammar: grammar.ok && grammar.grammar.kind === "json" ? grammar.grammar.text : "?" });
    expect(calls.some((c) => c.path.startsWith("/v1/"))).toBe(false);
  });

  it("a chunk whose count moved by more than its ids (a token held back mid-character) carries no ids; max_tokens is finish length", async () => {
    const { fetch } = stub({ stream: [chunk("{", [70], 1), chunk('"é', [72], 3), last(3, "limit")] });
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling: { ...sampling, max_tokens: 3, response_format: { type: "json_object" } } }));
    expect(parts).toEqual([
      { type: "text-delta", text: "{", tokens: [70] },
      { type: "text-delta", text: '"é' },
      { type: "usage", prompt_tokens: 20, completion_tokens: 3 },
      { type: "finish", reason: "length" },
    ]);
  });

  it("a chat with tool calls or tool results in its history runs as the tool prompt's canonical ids on /v1/completions and reports them", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const messages = [
      { role: "user" as const, content: "Weather?" },
      { role: "assistant" as const, content: "", tool_calls: [{ id: "c1", type: "function" as const, function: { name: "weather", arguments: "{}" } }] },
      { role: "tool" as const, content: "12 C", tool_call_id: "c1" },
    ];
    const parts = await collect(adapter.doStream({ model: "m", messages, sampling, reportPromptTokens: true }));
    const ids = [1, ...idsOf(toolPromptMessages(messages, [], false))];
    expect(parts[0]).toEqual({ type: "prompt", tokens: ids });
    expect(calls.map((c) => c.path).filter((p) => p.startsWith("/v1/"))).toEqual(["/v1/completions"]);
    expect(calls.find((c) => c.path === "/v1/completions")!.body).toMatchObject({ prompt: ids });
    // tool_choice none: the tools are not offered, and the chat runs as a plain one on the ids it carries.
    await collect(adapter.doStream({ model: "m", messages, sampling: { ...sampling, tools: [WEATHER], tool_choice: "none" }, promptTokens: ids }));
    expect(calls.at(-1)!.body).toMatchObject({ prompt: ids });
    expect(calls.at(-1)!.body).not.toHaveProperty("tools");
  });

  it("continues the text branch of tool_choice auto from its prefix under the rest of the grammar, after the replay", async () => {
    const { fetch, calls } = stub({ stream: [chunk(" there", [80], 1), last(1, "limit")] });
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "x" }], sampling: { ...sampling, tools: [WEATHER] }, promptTokens: [1, 5, 6], assistantPrefix: "Hi", assistantPrefixTokens: [40, 41] }));
    expect(parts).toEqual([{ type: "text-delta", text: " there", tokens: [80] }, { type: "usage", prompt_tokens: 20, completion_tokens: 1 }, { type: "finish", reason: "length" }]);
    expect(calls.map((c) => c.path)).toEqual(["/completion", "/completion", "/completion"]);
    expect(calls[0]!.body).toMatchObject({ prompt: [1, 5, 6], cache_prompt: false, n_predict: 1 });
    expect(calls[1]!.body).toMatchObject({ prompt: [1, 5, 6, 40], cache_prompt: true, n_predict: 1 });
    expect(calls[2]!.body).toMatchObject({ prompt: [1, 5, 6, 40, 41], grammar: TEXT_BRANCH_REST_GRAMMAR, stream: true, cache_prompt: true });
  });

  it("declines a continuation inside a call or a JSON answer, and logprobs under a grammar, with unsupported_parameter before any generation", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const base = { model: "m", messages: [{ role: "user" as const, content: "x" }], promptTokens: [1, 5, 6] };
    const cases = [
      { sampling: { ...sampling, tools: [WEATHER] }, assistantPrefix: '<tool_call>[{"na', assistantPrefixTokens: [60, 61] },
      { sampling: { ...sampling, tools: [WEATHER], tool_choice: "required" as const }, assistantPrefix: "Hi", assistantPrefixTokens: [40] },
      { sampling: { ...sampling, response_format: { type: "json_object" as const } }, assistantPrefix: "{", assistantPrefixTokens: [70] },
      { sampling: { ...sampling, tools: [WEATHER], logprobs: true } },
    ];
    for (const c of cases) {
      expect(await collect(adapter.doStream({ ...base, ...c }))).toEqual([{ type: "error", code: "unsupported_parameter", message: expect.any(String) }]);
      await expect(adapter.doGenerate({ ...base, ...c })).rejects.toMatchObject({ code: "unsupported_parameter" });
    }
    expect(calls.some((c) => c.path === "/completion" || c.path.startsWith("/v1/"))).toBe(false);
  });

  it("refuses malformed prompt ids as bad_request naming prompt_tokens, with tools or without", async () => {
    const { fetch } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    for (const request of [
      { model: "m", messages: [{ role: "user" as const, content: "x" }], sampling: { ...sampling, tools: [WEATHER] }, promptTokens: [1, -2] },
      { model: "m", messages: [{ role: "user" as const, content: "x" }], sampling, promptTokens: [1, -2] },
    ]) {
      expect(await collect(adapter.doStream(request))).toEqual([{ type: "error", code: "bad_request", message: expect.stringContaining("prompt_tokens") }]);
    }
  });

  it("a server without /props and /tokenize (not llama.cpp's) gets the chat as before", async () => {
    const { fetch, calls } = stub({ props: false });
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling, reportPromptTokens: true }));
    expect(parts.some((p) => p.type === "prompt")).toBe(false);
    expect(calls.at(-1)!.path).toBe("/v1/chat/completions");
  });
});
