import type { StreamPart } from "@tessera/protocol";
import { describe, expect, it } from "vitest";
import { EXACT_REPLAY_MAX_TOKENS } from "../exact-replay.js";
import { createLlamaServerAdapter } from "./llama-server-adapter.js";

/**
 * The canonical path's wire traffic, against a stub that answers as llama-server does: `/props` declares the template
 * and special tokens, `/tokenize` turns each character into one id (BOS 1 for `add_special` on a vocabulary that adds
 * it), and the chat runs as `/v1/completions` with an integer-array prompt; `/completion` takes a continuation's replay steps. The real server is in
 * test/backends/canonical-prompt-real.test.ts.
 */
const TEMPLATE = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";

function stub(options: { props?: boolean } = {}) {
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

describe("llama-server: canonical prompt", () => {
  it("renders the chat itself, reports the ids first, and runs them as an integer-array prompt on /v1/completions", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling, reportPromptTokens: true }));
    const ids = [1, ...[..."[user]yo[assistant]"].map((c) => c.charCodeAt(0))];
    expect(parts[0]).toEqual({ type: "prompt", tokens: ids });
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "length" });
    const run = calls.find((c) => c.path === "/v1/completions")!;
    expect(run.body).toMatchObject({ model: "m", prompt: ids, max_tokens: 1, temperature: 0 });
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
    expect(calls[3]!.body).toMatchObject({ prompt: [1, 5, 6, 40, 41, 42] });
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

  it("runs JSON mode as this node's canonical ids with a top-level json_schema, reporting no ids", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const schema = { type: "object", properties: { a: { type: "boolean" } }, required: ["a"] };
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling: { ...sampling, response_format: { type: "json_schema", json_schema: { name: "s", schema, strict: true } } }, reportPromptTokens: true }));
    expect(parts.some((p) => p.type === "prompt")).toBe(false);
    const run = calls.find((c) => c.path === "/v1/completions")!;
    expect(run.body).toMatchObject({ prompt: [1, ...[..."[user]yo[assistant]"].map((c) => c.charCodeAt(0))], json_schema: schema });
    expect(run.body).not.toHaveProperty("response_format");
    expect(calls.some((c) => c.path === "/v1/chat/completions")).toBe(false);
    await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling: { ...sampling, response_format: { type: "json_object" } } }));
    expect(calls.filter((c) => c.path === "/v1/completions").at(-1)!.body).toMatchObject({ json_schema: { type: "object" } });
  });

  it("refuses prompt ids with tools, and malformed ids, as bad_request naming prompt_tokens", async () => {
    const { fetch } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const tools = [{ type: "function" as const, function: { name: "f", parameters: { type: "object" } } }];
    for (const request of [
      { model: "m", messages: [{ role: "user" as const, content: "x" }], sampling: { ...sampling, tools }, promptTokens: [1, 2] },
      { model: "m", messages: [{ role: "user" as const, content: "x" }], sampling, promptTokens: [1, -2] },
    ]) {
      expect(await collect(adapter.doStream(request))).toEqual([{ type: "error", code: "bad_request", message: expect.stringContaining("prompt_tokens") }]);
    }
  });

  it("a chat with tool calls or tool results in its history keeps the chat route and reports no ids", async () => {
    const { fetch, calls } = stub();
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const messages = [
      { role: "user" as const, content: "Weather?" },
      { role: "assistant" as const, content: "", tool_calls: [{ id: "c1", type: "function" as const, function: { name: "weather", arguments: "{}" } }] },
      { role: "tool" as const, content: "12 C", tool_call_id: "c1" },
    ];
    const parts = await collect(adapter.doStream({ model: "m", messages, sampling, reportPromptTokens: true }));
    expect(parts.some((p) => p.type === "prompt")).toBe(false);
    expect(calls.map((c) => c.path)).toEqual(["/v1/chat/completions"]);
  });

  it("a server without /props and /tokenize (not llama.cpp's) gets the chat as before", async () => {
    const { fetch, calls } = stub({ props: false });
    const adapter = createLlamaServerAdapter({ baseURL: "http://llama.test", fetch });
    const parts = await collect(adapter.doStream({ model: "m", messages: [{ role: "user", content: "yo" }], sampling, reportPromptTokens: true }));
    expect(parts.some((p) => p.type === "prompt")).toBe(false);
    expect(calls.at(-1)!.path).toBe("/v1/chat/completions");
  });
});
