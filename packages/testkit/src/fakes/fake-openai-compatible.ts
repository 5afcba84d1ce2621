import type { ServerResponse } from "node:http";
import type { FakeBehaviour } from "./fake-behaviour.js";
import { FakeHttpServer, pumpTokens, sendJson, sendText, type RouteHandler } from "./fake-http-server.js";
import { countPromptTokens, fakeLogprob, fakeTokenId, planReply, tokenize } from "./fake-tokens.js";
import { plannedToolCall, unansweredToolMessage } from "./fake-tools.js";
import { OPENAI_FLAVOURS, type OpenAIFlavour, type OpenAIFlavourName } from "./openai-flavours.js";
import { type CompletionBody, writeCompletion } from "./fake-completions.js";
import { FAKE_EMBEDDING_DIMENSION, writeOpenAIEmbeddings } from "./fake-embeddings.js";

/**
 * A fake OpenAI-compatible inference server (vLLM, SGLang, MAX, llama-server, llama-swap), following the wire
 * format of `POST /v1/chat/completions`:
 * - streaming: `text/event-stream`, `data: <chat.completion.chunk>` lines — a first chunk with
 *   `delta:{role:"assistant",content:""}`, one chunk per token (with `logprobs.content[{token, logprob, bytes,
 *   top_logprobs}]` when `logprobs:true`), a chunk with `finish_reason` (`stop` | `length`), a usage chunk with
 *   `choices:[]` when `stream_options.include_usage` (llama-server puts usage in the finish chunk always), then
 *   `data: [DONE]`. A mid-stream failure is a `data: {"error":…}` event in the flavour's error shape.
 * - non-streaming: one `chat.completion` with `usage` and per-choice `logprobs`.
 * - `GET /v1/models` (`{object:"list", data:[{id, object:"model", created, owned_by}]}`), `GET /health` (flavour's
 *   body; 503 while loading), llama-swap's `GET /running`.
 * - tools: with `tools` offered (and `tool_choice` not `none`) the fake calls one (fake-tools.ts): streamed as
 *   OpenAI does, a delta `tool_calls:[{index, id, type, function:{name, arguments:""}}]` then argument fragments,
 *   `finish_reason:"tool_calls"`; whole, `message:{content:null, tool_calls}`. A `tool` message that answers no
 *   earlier call is a 400. `response_format` is accepted (and recorded in `http.requests`), not acted on.
 * The per-flavour differences (prefill, usage, error bodies, health body) are data in `openai-flavours.ts`.
 */
export interface FakeOpenAIOptions {
  flavour: OpenAIFlavourName;
  /** Models served. vLLM/SGLang/MAX serve one each; llama-swap lists every configured one. */
  models: string[];
  /** Models (among `models`) that are embedding models: `POST /v1/embeddings` answers for these only (fake-embeddings.ts). */
  embeddingModels?: string[];
  /** Width of the fake's vectors (default 16). */
  embeddingDimension?: number;
  behaviour?: Partial<FakeBehaviour>;
}

export class FakeOpenAICompatible {
  readonly http: FakeHttpServer;
  readonly flavour: OpenAIFlavour;
  readonly models: string[];
  /** llama-swap: the model whose upstream process is running (it hot-swaps on a request for another). */
  running: string | undefined;
  /** While true, `/health` answers 503 as a server still loading its model does. */
  loading = false;
  private seq = 0;
  private readonly embeddingModels: Set<string>;
  private readonly embeddingDimension: number;

  constructor(options: FakeOpenAIOptions) {
    this.flavour = OPENAI_FLAVOURS[options.flavour];
    this.models = [...options.models];
    this.embeddingModels = new Set(options.embeddingModels ?? []);
    this.embeddingDimension = options.embeddingDimension ?? FAKE_EMBEDDING_DIMENSION;
    this.http = new FakeHttpServer((method, path) => this.route(method, path));
    this.http.setBehaviour(options.behaviour ?? {});
  }

  get url(): string {
    return this.http.url;
  }

  private route(method: string, path: string): RouteHandler | undefined {
    const key = `${method} ${path}`;
    if (key === "GET /health" || (key === "GET /v1/health" && this.flavour.name === "max")) return (_q, res) => this.health(res);
    if (key === "GET /v1/models") return (_q, res) => this.listModels(res);
    if (key === "GET /running" && this.flavour.name === "llama-swap") {
      return (_q, res) =>
        sendJson(res, 200, { running: this.running ? [{ model: this.running, state: "ready" }] : [] });
    }
    if (key === "POST /v1/chat/completions") return (_q, res, body) => this.chat(res, body);
    if (key === "POST /v1/completions") return (_q, res, body) => this.completion(res, body as CompletionBody);
    if (key === "POST /v1/embeddings") return (_q, res, body) => this.embeddings(res, body as { model?: unknown });
    return undefined;
  }

  private health(res: ServerResponse): void {
    if (this.loading) {
      if (this.flavour.name === "llama-server") {
        sendJson(res, 503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } });
      } else {
        res.writeHead(503, { "content-length": 0 });
        res.end();
      }
      return;
    }
    const h = this.flavour.healthBody;
    if (h.kind === "json") sendJson(res, 200, h.body);
    else if (h.kind === "text") sendText(res, 200, h.text);
    else {
      res.writeHead(200, { "content-length": 0 });
      res.end();
    }
  }

  private listModels(res: ServerResponse): void {
    sendJson(res, 200, {
      object: "list",
      data: this.models.map((id) => ({ id, object: "model", created: 1_700_000_000, owned_by: this.flavour.owned_by })),
    });
  }

  private error(res: ServerResponse, status: number, message: string, type: string): void {
    sendJson(res, status, this.errorBody(status, message, type));
  }

  private errorBody(status: number, message: string, type: string): unknown {
    switch (this.flavour.errorShape) {
      case "top-level":
        return { object: "error", message, type, param: null, code: status };
      case "llama-swap":
        return { error: message };
      default:
        return { error: { message, type, param: null, code: status } };
    }
  }

  /** `POST /v1/embeddings` (fake-embeddings.ts): a generative model is a 400, as vLLM answers for one. */
  private embeddings(res: ServerResponse, body: { model?: unknown; input?: unknown; encoding_format?: unknown }): void {
    if (typeof body?.model !== "string") return this.error(res, 400, "model is required", "BadRequestError");
    if (!this.flavour.ignoresModelName && !this.models.includes(body.model)) return this.error(res, 404, `The model \`${body.model}\` does not exist.`, "NotFoundError");
    if (!this.embeddingModels.has(body.model)) return this.error(res, 400, "The model does not support Embeddings API", "BadRequestError");
    writeOpenAIEmbeddings(res, body, this.embeddingDimension, (status, message) => this.error(res, status, message, "BadRequestError"));
  }

  /** `POST /v1/completions` (fake-completions.ts), model checked as for chat. */
  private completion(res: ServerResponse, body: CompletionBody): void {
    if (typeof body?.model !== "string") return this.error(res, 400, "model is required", "BadRequestError");
    if (!this.flavour.ignoresModelName && !this.models.includes(body.model)) {
      if (this.flavour.name === "llama-swap") this.error(res, 400, `could not find real modelID for ${body.model}`, "");
      else this.error(res, 404, `The model \`${body.model}\` does not exist.`, "NotFoundError");
      return;
    }
    if (this.flavour.name === "llama-swap") this.running = body.model;
    writeCompletion(res, body, {
      flavour: this.flavour,
      behaviour: this.http.behaviour,
      seq: ++this.seq,
      error: (status, message, type) => this.error(res, status, message, type),
      errorBody: (status, message, type) => this.errorBody(status, message, type),
    });
  }

  private toolCall(res: ServerResponse, body: Parameters<typeof writeToolCall>[2], name: string): void {
    writeToolCall(this, res, body, name, ++this.seq);
  }

  private chat(res: ServerResponse, raw: unknown): void {
    const body = raw as {
      model?: string;
      messages?: { role: string; content: string; tool_call_id?: unknown; tool_calls?: { id?: unknown }[] | null }[];
      stream?: boolean;
      tools?: { type?: string; function?: { name?: string } }[] | null;
      tool_choice?: unknown;
      max_tokens?: number;
      max_completion_tokens?: number;
      stream_options?: { include_usage?: boolean };
      logprobs?: boolean;
      top_logprobs?: number;
      continue_final_message?: boolean;
      add_generation_prompt?: boolean;
    };
    if (typeof body?.model !== "string" || !Array.isArray(body.messages) || body.messages.length === 0) {
      this.error(res, 400, "model and messages are required", "BadRequestError");
      return;
    }
    if (!this.flavour.ignoresModelName && !this.models.includes(body.model)) {
      if (this.flavour.name === "llama-swap") this.error(res, 400, `could not find real modelID for ${body.model}`, "");
      else this.error(res, 404, `The model \`${body.model}\` does not exist.`, "NotFoundError");
      return;
    }
    if (this.flavour.continueFinalMessage && body.continue_final_message === true && body.add_generation_prompt === true) {
      this.error(res, 400, "Cannot set both `continue_final_message` and `add_generation_prompt`.", "BadRequestError");
      return;
    }
    const unanswered = unansweredToolMessage(body.messages);
    if (unanswered) {
      this.error(res, 400, unanswered, "BadRequestError");
      return;
    }
    if (this.flavour.name === "llama-swap") this.running = body.model;
    const toolName = plannedToolCall(body);
    if (toolName !== undefined) {
      this.toolCall(res, body, toolName);
      return;
    }
    const messages = body.messages;
    const last = messages[messages.length - 1];
    const continuing =
      last.role === "assistant" &&
      ((this.flavour.continueFinalMessage && body.continue_final_message === true) || this.flavour.prefillTrailingAssistant);
    const lastUser = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    const behaviour = this.http.behaviour;
    const reply = typeof behaviour.reply === "function" ? behaviour.reply(lastUser) : behaviour.reply;
    const plan = planReply(reply, body.max_completion_tokens ?? body.max_tokens ?? undefined, continuing ? last.content : undefined);
    const usage = {
      prompt_tokens: countPromptTokens(messages),
      completion_tokens: plan.tokens.length,
      total_tokens: countPromptTokens(messages) + plan.tokens.length,
    };
    const id = `chatcmpl-${++this.seq}`;
    const created = 1_700_000_000 + this.seq;
    const model = body.model;
    const wantLogprobs = body.logprobs === true;
    // llama-server also reports each token's id in its logprobs entries.
    const withIds = this.flavour.name === "llama-server" || this.flavour.name === "llama-swap";
    const logprobEntry = (i: number) => ({
      ...(withIds ? { id: fakeTokenId(plan.tokens[i]) } : {}),
      token: plan.tokens[i],
      logprob: fakeLogprob(i),
      bytes: [...Buffer.from(plan.tokens[i], "utf8")],
      // As OpenAI: the likeliest first (the token itself, as a greedy server chose it), then made-up runners-up.
      top_logprobs: Array.from({ length: Math.min(20, Math.max(0, body.top_logprobs ?? 0)) }, (_u, k) =>
        k === 0
          ? { token: plan.tokens[i], logprob: fakeLogprob(i), bytes: [...Buffer.from(plan.tokens[i], "utf8")] }
          : { token: `alt${k}`, logprob: fakeLogprob(i) - k, bytes: [...Buffer.from(`alt${k}`, "utf8")] },
      ),
    });

    if (body.stream !== true) {
      if (behaviour.failAfterTokens !== undefined) {
        this.error(res, 500, "EngineCore encountered an issue.", "InternalServerError");
        return;
      }
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: plan.tokens.join("") },
            logprobs: wantLogprobs ? { content: plan.tokens.map((_t, i) => logprobEntry(i)) } : null,
            finish_reason: plan.finish,
          },
        ],
        usage,
      });
      return;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    // The constant part of every token chunk, built once per request: the hot path only splices the token in.
    const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"choices":[{"index":0,"delta":{"content":`;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write(
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] })}\n\n`,
    );
    pumpTokens(res, behaviour, {
      count: plan.tokens.length,
      emit: (i) => {
        const lp = wantLogprobs ? JSON.stringify({ content: [logprobEntry(i)] }) : "null";
        res.write(`${head}${JSON.stringify(plan.tokens[i])}},"logprobs":${lp},"finish_reason":null}]}\n\n`);
      },
      fail: () => {
        res.write(`data: ${JSON.stringify(this.errorBody(500, "EngineCore encountered an issue.", "InternalServerError"))}\n\n`);
        res.end(this.flavour.name === "vllm" || this.flavour.name === "sglang" ? "data: [DONE]\n\n" : "");
      },
      finish: () => {
        const finishChunk: Record<string, unknown> = {
          id,
          object: "chat.completion.chunk",
          created,
          model,
          choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: plan.finish }],
        };
        if (this.flavour.usageAlwaysInLastChunk) {
          finishChunk.usage = usage;
          finishChunk.timings = { prompt_n: usage.prompt_tokens, predicted_n: usage.completion_tokens };
        }
        res.write(`data: ${JSON.stringify(finishChunk)}\n\n`);
        if (includeUsage && !this.flavour.usageAlwaysInLastChunk) {
          res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage })}\n\n`);
        }
        res.end("data: [DONE]\n\n");
      },
    });
  }
}

/** A whole call, answered with the flavour's usage habits: whole, or streamed as OpenAI streams calls. */
function writeToolCall(
  fake: FakeOpenAICompatible,
  res: ServerResponse,
  body: { model?: string; messages?: { content: string | null }[]; stream?: boolean; stream_options?: { include_usage?: boolean } },
  name: string,
  seq: number,
): void {
  const args = fake.http.behaviour.toolArguments;
  const pieces = tokenize(args);
  const prompt = countPromptTokens(body.messages ?? []);
  const usage = { prompt_tokens: prompt, completion_tokens: pieces.length, total_tokens: prompt + pieces.length };
  const id = `chatcmpl-${seq}`;
  const created = 1_700_000_000 + seq;
  const call = { id: `call_fake${seq}`, type: "function", function: { name, arguments: args } };
  if (body.stream !== true) {
    sendJson(res, 200, {
      id,
      object: "chat.completion",
      created,
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content: null, tool_calls: [call] }, logprobs: null, finish_reason: "tool_calls" }],
      usage,
    });
    return;
  }
  const chunk = (delta: unknown, finish: string | null, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra })}\n\n`;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  res.write(chunk({ role: "assistant", content: null }, null));
  res.write(chunk({ tool_calls: [{ index: 0, id: call.id, type: "function", function: { name, arguments: "" } }] }, null));
  for (const piece of pieces) res.write(chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }, null));
  const last = fake.flavour.usageAlwaysInLastChunk ? { usage } : {};
  res.write(chunk({}, "tool_calls", last));
  if (body.stream_options?.include_usage === true && !fake.flavour.usageAlwaysInLastChunk) {
    res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: body.model, choices: [], usage })}\n\n`);
  }
  res.end("data: [DONE]\n\n");
}

export async function startFakeOpenAICompatible(options: FakeOpenAIOptions): Promise<FakeOpenAICompatible> {
  const fake = new FakeOpenAICompatible(options);
  await fake.http.listen();
  return fake;
}
