import type { ServerResponse } from "node:http";
import type { FakeBehaviour } from "./fake-behaviour.js";
import { pumpTokens, sendJson } from "./fake-http-server.js";
import { fakeLogprob, fakeTokenId, planReply, tokenize, type PlannedReply } from "./fake-tokens.js";
import type { OpenAIFlavour } from "./openai-flavours.js";

/**
 * `POST /v1/completions` (OpenAI's legacy text completion) as the OpenAI-compatible servers answer it:
 * - streaming: `data: <text_completion>` lines, one per token, `choices:[{index, text, logprobs, finish_reason:null}]`,
 *   then a chunk with `text:""` and `finish_reason`, a usage chunk with `choices:[]` when
 *   `stream_options.include_usage` (llama-server puts usage in the finish chunk always), then `data: [DONE]`;
 * - whole: one `text_completion` with `choices[0].text` and `usage`;
 * - `logprobs` (an integer, the alternatives per token): vLLM, SGLang and MAX answer OpenAI's legacy shape
 *   `{tokens, token_logprobs, top_logprobs, text_offset}`; llama-server (and llama-swap) `{content:[{id, token,
 *   logprob, bytes, top_logprobs}]}`, with token ids;
 * - `prompt` must be a string or a list of strings; `echo`, `suffix` and `best_of` are refused as llama-server does.
 * Generation "continues the document": the reply is `behaviour.reply(prompt)`, resumed after the longest start of it
 * that ends the prompt (a failover continuation sends prompt + the text already produced).
 */
export interface CompletionBody {
  model?: string;
  prompt?: unknown;
  stream?: boolean;
  max_tokens?: number;
  logprobs?: unknown;
  stream_options?: { include_usage?: boolean };
  echo?: unknown;
  suffix?: unknown;
  best_of?: unknown;
}

/** The part of the full reply still to write after `prompt`, which may end with the reply's first characters. */
export function planCompletion(fullReply: string, prompt: string, maxTokens: number | undefined): PlannedReply {
  for (let k = Math.min(fullReply.length, prompt.length); k > 0; k--) {
    if (prompt.endsWith(fullReply.slice(0, k))) return planReply(fullReply, maxTokens, fullReply.slice(0, k));
  }
  return planReply(fullReply, maxTokens);
}

export function writeCompletion(
  res: ServerResponse,
  body: CompletionBody,
  ctx: { flavour: OpenAIFlavour; behaviour: FakeBehaviour; seq: number; error: (status: number, message: string, type: string) => void; errorBody: (status: number, message: string, type: string) => unknown },
): void {
  if (typeof body.prompt !== "string") {
    ctx.error(400, '"prompt" must be a string', "BadRequestError");
    return;
  }
  if (body.echo === true) return ctx.error(400, "Only no echo is supported", "BadRequestError");
  for (const param of ["suffix", "best_of"] as const) if (body[param] !== undefined) return ctx.error(400, `Unsupported param: ${param}`, "BadRequestError");
  const prompt = body.prompt;
  const { behaviour, flavour } = ctx;
  const reply = typeof behaviour.reply === "function" ? behaviour.reply(prompt) : behaviour.reply;
  const plan = planCompletion(reply, prompt, body.max_tokens);
  const promptTokens = tokenize(prompt).length + 1;
  const usage = { prompt_tokens: promptTokens, completion_tokens: plan.tokens.length, total_tokens: promptTokens + plan.tokens.length };
  const id = `cmpl-${ctx.seq}`;
  const created = 1_700_000_000 + ctx.seq;
  const model = body.model;
  const wantLogprobs = typeof body.logprobs === "number" && body.logprobs > 0;
  const withIds = flavour.name === "llama-server" || flavour.name === "llama-swap";
  const logprobs = (from: number, to: number) => {
    if (!wantLogprobs) return null;
    const range = plan.tokens.slice(from, to);
    if (withIds) {
      return { content: range.map((token, j) => ({ id: fakeTokenId(token), token, logprob: fakeLogprob(from + j), bytes: [...Buffer.from(token, "utf8")], top_logprobs: [] })) };
    }
    let offset = prompt.length + plan.tokens.slice(0, from).join("").length;
    const text_offset = range.map((t) => ((offset += t.length), offset - t.length));
    return { tokens: range, token_logprobs: range.map((_t, j) => fakeLogprob(from + j)), top_logprobs: range.map((t, j) => ({ [t]: fakeLogprob(from + j) })), text_offset };
  };
  const object = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ id, object: "text_completion", created, model, choices, ...extra });

  if (body.stream !== true) {
    if (behaviour.failAfterTokens !== undefined) return ctx.error(500, "EngineCore encountered an issue.", "InternalServerError");
    sendJson(res, 200, object([{ index: 0, text: plan.tokens.join(""), logprobs: logprobs(0, plan.tokens.length), finish_reason: plan.finish }], { usage }));
    return;
  }
  const includeUsage = body.stream_options?.include_usage === true;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  const write = (value: unknown) => res.write(`data: ${JSON.stringify(value)}\n\n`);
  pumpTokens(res, behaviour, {
    count: plan.tokens.length,
    emit: (i) => write(object([{ index: 0, text: plan.tokens[i], logprobs: logprobs(i, i + 1), finish_reason: null }])),
    fail: () => {
      write(ctx.errorBody(500, "EngineCore encountered an issue.", "InternalServerError"));
      res.end(flavour.name === "vllm" || flavour.name === "sglang" ? "data: [DONE]\n\n" : "");
    },
    finish: () => {
      write(object([{ index: 0, text: "", logprobs: null, finish_reason: plan.finish }], flavour.usageAlwaysInLastChunk ? { usage } : {}));
      if (includeUsage && !flavour.usageAlwaysInLastChunk) write(object([], { usage }));
      res.end("data: [DONE]\n\n");
    },
  });
}
