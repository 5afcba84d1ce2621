import type { StreamPart } from "@tessera/protocol";
import { FakeHttpServer, sendJson } from "@tessera/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { createVllmAdapter } from "../../src/backends/vllm/vllm-adapter.js";

/**
 * How a vLLM node's answer gets its token ids from `return_token_ids` (openai-compatible-adapter.ts `events`), for the
 * ways vLLM can lay out its chunks (vllm/v1/engine/detokenizer.py: the token it stopped on is listed among the ids
 * but never written as text, and counted in usage; `stream_interval` can put several tokens in one chunk). The server
 * here writes exactly the chunks each case names, over real HTTP.
 */
let server: FakeHttpServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

type Choice = { content: string; ids?: number[]; finish?: "stop" | "length"; stopReason?: string | number | null };

async function vllmWriting(choices: Choice[], usage: { prompt_tokens: number; completion_tokens: number }) {
  server = new FakeHttpServer((method, path) => {
    if (method === "POST" && path === "/v1/chat/completions") {
      return (_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        for (const c of choices) {
          const choice = { index: 0, delta: { content: c.content }, logprobs: null, finish_reason: c.finish ?? null, ...(c.ids ? { token_ids: c.ids } : {}), ...(c.finish ? { stop_reason: c.stopReason ?? null } : {}) };
          res.write(`data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 0, model: "m", choices: [choice] })}\n\n`);
        }
        res.write(`data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 0, model: "m", choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } })}\n\n`);
        res.end("data: [DONE]\n\n");
      };
    }
    if (method === "GET" && path === "/v1/models") return (_req, res) => sendJson(res, 200, { object: "list", data: [{ id: "m", object: "model" }] });
    return undefined;
  });
  await server.listen();
  const adapter = createVllmAdapter({ instances: [{ host: server.url }] });
  const out = { deltas: [] as Array<{ text: string; tokens: number[] | undefined }>, completionTokens: -1, finish: "" };
  for await (const part of adapter.doStream({ model: "m", messages: [{ role: "user", content: "hi" }], sampling: { max_tokens: 8, temperature: 0, top_p: 1 } }) as AsyncIterable<StreamPart>) {
    if (part.type === "text-delta") out.deltas.push({ text: part.text, tokens: part.tokens });
    if (part.type === "usage") out.completionTokens = part.completion_tokens;
    if (part.type === "finish") out.finish = part.reason;
  }
  expect((server.requests.find((r) => r.path === "/v1/chat/completions")?.body as { return_token_ids?: boolean }).return_token_ids).toBe(true);
  return out;
}

describe("a vLLM answer's token ids", () => {
  it("one token a chunk, EOS in a chunk of its own: the EOS id is left out of the ids and of usage", async () => {
    const out = await vllmWriting([{ content: "Hi", ids: [10] }, { content: " there", ids: [11] }, { content: "", ids: [2], finish: "stop", stopReason: null }], { prompt_tokens: 5, completion_tokens: 3 });
    expect(out).toEqual({ deltas: [{ text: "Hi", tokens: [10] }, { text: " there", tokens: [11] }], completionTokens: 2, finish: "stop" });
  });

  it("several tokens a chunk, the last with EOS (stream_interval): the same", async () => {
    const out = await vllmWriting([{ content: "Hi there", ids: [10, 11] }, { content: "!", ids: [12, 2], finish: "stop" }], { prompt_tokens: 5, completion_tokens: 4 });
    expect(out).toEqual({ deltas: [{ text: "Hi there", tokens: [10, 11] }, { text: "!", tokens: [12] }], completionTokens: 3, finish: "stop" });
  });

  it("EOS listed before an empty finishing chunk: the same", async () => {
    const out = await vllmWriting([{ content: "Hi", ids: [10] }, { content: "", ids: [2] }, { content: "", ids: [], finish: "stop" }], { prompt_tokens: 5, completion_tokens: 2 });
    expect(out).toEqual({ deltas: [{ text: "Hi", tokens: [10] }], completionTokens: 1, finish: "stop" });
  });

  it("a stop token id (stop_token_ids) is left out like EOS; a stop string leaves the ids as listed", async () => {
    const byToken = await vllmWriting([{ content: "Hi", ids: [10] }, { content: "", ids: [99], finish: "stop", stopReason: 99 }], { prompt_tokens: 5, completion_tokens: 2 });
    expect(byToken).toMatchObject({ deltas: [{ text: "Hi", tokens: [10] }], completionTokens: 1 });
    const byString = await vllmWriting([{ content: "Hi", ids: [10] }, { content: " the", ids: [11], finish: "stop", stopReason: "END" }], { prompt_tokens: 5, completion_tokens: 2 });
    expect(byString).toMatchObject({ deltas: [{ text: "Hi", tokens: [10] }, { text: " the", tokens: [11] }], completionTokens: 2 });
  });

  it("a token held back mid-character (no text yet) goes with the next chunk that has text; length keeps every id", async () => {
    const out = await vllmWriting([{ content: "", ids: [200] }, { content: "é", ids: [201] }, { content: "x", ids: [12], finish: "length" }], { prompt_tokens: 5, completion_tokens: 3 });
    expect(out).toEqual({ deltas: [{ text: "é", tokens: [200, 201] }, { text: "x", tokens: [12] }], completionTokens: 3, finish: "length" });
  });

  it("a vLLM that ignores return_token_ids (too old): no ids, usage as sent", async () => {
    const out = await vllmWriting([{ content: "Hi" }, { content: "", finish: "stop" }], { prompt_tokens: 5, completion_tokens: 2 });
    expect(out).toEqual({ deltas: [{ text: "Hi", tokens: undefined }], completionTokens: 2, finish: "stop" });
  });
});
