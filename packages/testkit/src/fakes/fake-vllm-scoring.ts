import type { ChatMessage } from "@tessera/protocol";
import { type RouteHandler, sendJson } from "./fake-http-server.js";
import { IdLevelFakeServer } from "./id-level-fake-server.js";
import { type Distribution, GrammarError, type GrammarGenerated, type IdLevelModel } from "./id-level-model.js";

/**
 * An id-level fake of vLLM's OpenAI-compatible server for the endpoints a spot-check reference uses, backed by a real
 * model (id-level-model.ts). Its answers follow vLLM's wire format (vllm/entrypoints/openai: the completion protocol
 * and serving, the tokenize endpoints):
 * - `POST /v1/completions` with `prompt` as token ids (or text), `max_tokens`, `temperature` 0, `prompt_logprobs`:
 *   `choices[0].prompt_logprobs` has one entry per prompt token, `null` first, then `{ "<id>": {logprob, rank,
 *   decoded_token} }` holding the token actually there (its exact rank) and the top `prompt_logprobs`. More than
 *   `maxLogprobs` (vLLM's `--max-logprobs`, default 20) is refused with 400, as vLLM refuses it; so is a stream with
 *   prompt_logprobs.
 * - `POST /tokenize` with `prompt` (+ `add_special_tokens`, default true) or `messages` (+ `add_generation_prompt`,
 *   default true; `add_special_tokens` default false): `{count, max_model_len, tokens}`.
 * - `GET /tokenizer_info` (vLLM serves it only with `--enable-tokenizer-info-endpoint`: `tokenizerInfo`): the
 *   tokenizer's config, `eos_token` included.
 * - `POST /v1/chat/completions`, streamed or not, greedy, with `logprobs` (+ `top_logprobs`), `return_token_ids`
 *   (each chunk's `token_ids`; the token it stopped on is listed though not in the text, with `stop_reason` null for
 *   EOS, as vLLM's detokenizer does) and `stream_options.include_usage` (`completion_tokens` counts that token too):
 *   what a vLLM node's answers look like to its adapter.
 * - `GET /health`, `GET /v1/models`.
 * - `POST /v1/completions` streamed on an id prompt, with or without `structured_outputs.grammar`
 *   (`completeStreamed`): what a vLLM node's answers on canonical prompt ids look like to its adapter.
 * It decodes greedily only (temperature 0); anything else is refused by name with 400, never ignored. `fault` makes it answer wrongly on purpose, for the scorer's bad-input tests.
 */
export type VllmScoringFault =
  /** `prompt_logprobs` missing from the choice (a server or proxy that drops vLLM's extension). */
  | "no-prompt-logprobs"
  /** Dicts keyed by the token's text instead of its id. */
  | "keyed-by-text"
  /** One entry fewer than prompt tokens. */
  | "short-prompt-logprobs";

export interface FakeVllmScoringOptions {
  /** Answer 400 to `structured_outputs.grammar`, as a vLLM whose grammar backend cannot read the text does. */
  refuseGrammar?: boolean;
  model: IdLevelModel;
  /** vLLM's `--max-logprobs` (default 20). */
  maxLogprobs?: number;
  /** Serve `GET /tokenizer_info` (vLLM's `--enable-tokenizer-info-endpoint`). Default true. */
  tokenizerInfo?: boolean;
}

export class FakeVllmScoring extends IdLevelFakeServer {
  fault: VllmScoringFault | undefined;
  /** Answer 400 to `structured_outputs.grammar` (see the options). */
  refuseGrammar: boolean;
  private readonly maxLogprobs: number;
  private readonly tokenizerInfo: boolean;

  private constructor(options: FakeVllmScoringOptions) {
    super(options.model, "vllm");
    this.maxLogprobs = options.maxLogprobs ?? 20;
    this.tokenizerInfo = options.tokenizerInfo ?? true;
    this.refuseGrammar = options.refuseGrammar ?? false;
  }

  static start(options: FakeVllmScoringOptions): Promise<FakeVllmScoring> {
    return new FakeVllmScoring(options).listen();
  }

  protected route(method: string, path: string): RouteHandler | undefined {
    if (method === "GET" && path === "/tokenizer_info" && this.tokenizerInfo) {
      return (_req, res) =>
        sendJson(res, 200, { tokenizer_class: "LlamaTokenizerFast", bos_token: this.model.bosText, eos_token: this.model.eosText, model_max_length: this.model.contextSize });
    }
    if (method === "POST" && path === "/tokenize") return (_req, res, body) => this.tokenize(res, body as Record<string, unknown>);
    if (method === "POST" && path === "/v1/completions") return (_req, res, body) => this.complete(res, body as Record<string, unknown>);
    if (method === "POST" && path === "/v1/chat/completions") return (_req, res, body) => this.chat(res, body as Record<string, unknown>);
    return undefined;
  }

  private refuse(res: Parameters<RouteHandler>[1], status: number, message: string, param?: string): void {
    // vLLM's ErrorResponse: {"error": {message, type, param, code}}.
    sendJson(res, status, { error: { message, type: status === 404 ? "NotFoundError" : "BadRequestError", param: param ?? null, code: status } });
  }

  private modelKnown(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): boolean {
    if (body.model !== undefined && body.model !== this.model.modelId) {
      this.refuse(res, 404, `The model \`${String(body.model)}\` does not exist.`, "model");
      return false;
    }
    return true;
  }

  private tokenize(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): void {
    if (!this.modelKnown(res, body)) return;
    let tokens: number[];
    if (Array.isArray(body.messages)) {
      if (body.add_generation_prompt === false || body.continue_final_message === true || body.add_special_tokens === true) {
        return this.refuse(res, 400, "fake vLLM: /tokenize renders chats only with add_generation_prompt and no added special tokens", "messages");
      }
      tokens = this.model.chatTokens(body.messages as ChatMessage[]);
    } else if (typeof body.prompt === "string") {
      tokens = this.model.tokenize(body.prompt, body.add_special_tokens !== false);
    } else {
      return this.refuse(res, 400, "Either prompt or messages must be provided", "prompt");
    }
    sendJson(res, 200, { count: tokens.length, max_model_len: this.model.contextSize, tokens, token_strs: null });
  }

  private async complete(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): Promise<void> {
    if (!this.modelKnown(res, body)) return;
    if (body.stream === true && body.prompt_logprobs === undefined) return this.completeStreamed(res, body);
    const promptLogprobs = body.prompt_logprobs;
    if (promptLogprobs !== undefined && promptLogprobs !== null) {
      if (!Number.isInteger(promptLogprobs) || (promptLogprobs as number) < 0) return this.refuse(res, 400, "`prompt_logprobs` must be a positive value or -1.", "prompt_logprobs");
      if (body.stream === true) return this.refuse(res, 400, "`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs");
      if ((promptLogprobs as number) > this.maxLogprobs) {
        return this.refuse(res, 400, `Requested prompt logprobs of ${String(promptLogprobs)}, which is greater than max allowed: ${this.maxLogprobs}`, "prompt_logprobs");
      }
    }
    if ((body.temperature ?? 1) !== 0) return this.refuse(res, 400, "fake vLLM: only greedy decoding (temperature 0) is implemented", "temperature");
    for (const field of ["logprobs", "echo", "n", "best_of", "stop", "stop_token_ids", "top_k", "logit_bias"]) {
      if (body[field] !== undefined && body[field] !== null && body[field] !== false && !(field === "n" && body[field] === 1)) return this.refuse(res, 400, `fake vLLM: ${field} is not implemented`, field);
    }
    const maxTokens = body.max_tokens === undefined || body.max_tokens === null ? 16 : body.max_tokens;
    if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) return this.refuse(res, 400, "max_tokens must be at least 1", "max_tokens");
    let ids: number[];
    if (typeof body.prompt === "string") ids = this.model.tokenize(body.prompt, body.add_special_tokens !== false);
    else if (Array.isArray(body.prompt) && body.prompt.length > 0 && body.prompt.every((t) => Number.isInteger(t) && (t as number) >= 0)) ids = body.prompt as number[];
    else return this.refuse(res, 400, "prompt must be a string or a non-empty list of token ids", "prompt");
    if (ids.some((t) => t >= this.model.vocabSize)) return this.refuse(res, 400, `Token id ${ids.find((t) => t >= this.model.vocabSize)} is out of vocabulary`, "prompt");
    if (ids.length + (maxTokens as number) > this.model.contextSize) {
      return this.refuse(res, 400, `This model's maximum context length is ${this.model.contextSize} tokens. However, your request has ${ids.length} input tokens and requests ${String(maxTokens)} output tokens.`, "max_tokens");
    }

    const generated = await this.model.generate(ids, maxTokens as number, body.ignore_eos === true);
    let entries: Array<Record<string, { logprob: number; rank: number; decoded_token: string }> | null> | undefined;
    if (promptLogprobs !== undefined && promptLogprobs !== null) {
      const rows = await this.model.rows(ids, 0, ids.length - 1);
      entries = [null, ...rows.map((row, i) => this.entry(row, ids[i + 1]!, promptLogprobs as number))];
      if (this.fault === "keyed-by-text") entries = entries.map((e) => (e === null ? null : Object.fromEntries(Object.values(e).map((v) => [v.decoded_token, v]))));
      if (this.fault === "short-prompt-logprobs") entries = entries.slice(0, -1);
      if (this.fault === "no-prompt-logprobs") entries = undefined;
    }
    sendJson(res, 200, {
      id: `cmpl-fake-${this.http.requests.length}`,
      object: "text_completion",
      created: 0,
      model: this.model.modelId,
      choices: [
        {
          index: 0,
          text: this.model.detokenize(generated.tokens),
          logprobs: null,
          finish_reason: generated.finish,
          stop_reason: null,
          ...(entries !== undefined ? { prompt_logprobs: entries } : {}),
        },
      ],
      usage: { prompt_tokens: ids.length, total_tokens: ids.length + generated.tokens.length, completion_tokens: generated.tokens.length },
    });
  }

  /**
   * `POST /v1/completions` streamed, greedy, on an id prompt, as a vLLM node generates on canonical prompt ids: with
   * `structured_outputs: {grammar}` (GBNF, which vLLM's xgrammar backend reads; here compiled by node-llama-cpp, as the
   * embedded engine compiles it) the answer runs under it; without, `logprobs` (the legacy integer) gives each chunk
   * OpenAI's legacy `logprobs` (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`). One chunk per token with its `token_ids` (`return_token_ids`), text only once a character is whole, the end-of-generation token
   * listed last with no text and `stop_reason` null, then the usage chunk (`stream_options.include_usage`; it counts
   * that token too) and `[DONE]`. A grammar that does not compile, or any grammar with `refuseGrammar`, is a 400.
   */
  private async completeStreamed(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): Promise<void> {
    const structured = body.structured_outputs as { grammar?: unknown } | undefined | null;
    const grammar = structured === undefined || structured === null ? undefined : structured.grammar;
    if (grammar !== undefined && typeof grammar !== "string") return this.refuse(res, 400, "fake vLLM: only structured_outputs.grammar is implemented", "structured_outputs");
    if (grammar !== undefined && this.refuseGrammar) return this.refuse(res, 400, "Invalid grammar specification.", "structured_outputs");
    if ((body.temperature ?? 1) !== 0) return this.refuse(res, 400, "fake vLLM: only greedy decoding (temperature 0) is implemented", "temperature");
    for (const field of ["echo", "stop", "n", "best_of", "guided_grammar", ...(grammar !== undefined ? ["logprobs"] : [])]) {
      if (body[field] !== undefined && body[field] !== null && body[field] !== false && !(field === "n" && body[field] === 1)) return this.refuse(res, 400, `fake vLLM: ${field} is not implemented on a streamed completion${grammar !== undefined ? " with a grammar" : ""}`, field);
    }
    const topLogprobs = body.logprobs ?? null;
    if (topLogprobs !== null && (!Number.isInteger(topLogprobs) || (topLogprobs as number) < 0 || (topLogprobs as number) > this.maxLogprobs)) return this.refuse(res, 400, "logprobs out of range", "logprobs");
    const prompt = body.prompt;
    if (!Array.isArray(prompt) || prompt.length === 0 || !prompt.every((t) => Number.isInteger(t) && (t as number) >= 0 && (t as number) < this.model.vocabSize)) {
      return this.refuse(res, 400, "fake vLLM: a grammar answer takes a prompt of token ids in the vocabulary", "prompt");
    }
    const maxTokens = body.max_tokens ?? 16;
    if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) return this.refuse(res, 400, "max_tokens must be at least 1", "max_tokens");
    let generated: GrammarGenerated & { rows?: Distribution[] };
    try {
      if (grammar !== undefined) generated = await this.model.generateUnderGrammar(prompt as number[], maxTokens as number, grammar);
      else {
        const free = await this.model.generate(prompt as number[], maxTokens as number, false);
        generated = { ...free, ...(free.finish === "stop" ? { stopToken: this.model.eosToken } : {}) };
      }
    } catch (error) {
      if (error instanceof GrammarError) return this.refuse(res, 400, error.message, "structured_outputs");
      throw error;
    }
    const withIds = body.return_token_ids === true;
    const steps = [...generated.tokens];
    if (generated.stopToken !== undefined) steps.push(generated.stopToken);
    const textAfter = (n: number) => this.model.detokenize(generated.tokens.slice(0, Math.min(n, generated.tokens.length)), prompt as number[]).replace(/\uFFFD+$/u, "");
    const id = `cmpl-fake-${this.http.requests.length}`;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    let written = "";
    steps.forEach((token, i) => {
      const last = i === steps.length - 1;
      const text = textAfter(i + 1);
      const row = generated.rows?.[i];
      const legacy =
        topLogprobs !== null && row
          ? {
              tokens: [this.model.tokenText(token)],
              token_logprobs: [row.logprob(token)],
              top_logprobs: [Object.fromEntries(row.top(topLogprobs as number).map((t) => [this.model.tokenText(t.token), t.logprob]))],
              text_offset: [written.length],
            }
          : null;
      send({
        id,
        object: "text_completion",
        created: 0,
        model: this.model.modelId,
        choices: [{ index: 0, text: text.slice(written.length), logprobs: legacy, finish_reason: last ? generated.finish : null, stop_reason: null, ...(withIds ? { token_ids: [token] } : {}) }],
      });
      written = text;
    });
    const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
    if (streamOptions?.include_usage === true) {
      send({ id, object: "text_completion", created: 0, model: this.model.modelId, choices: [], usage: { prompt_tokens: prompt.length, total_tokens: prompt.length + steps.length, completion_tokens: steps.length } });
    }
    res.end("data: [DONE]\n\n");
  }

  private async chat(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): Promise<void> {
    if (!this.modelKnown(res, body)) return;
    if ((body.temperature ?? 1) !== 0) return this.refuse(res, 400, "fake vLLM: only greedy decoding (temperature 0) is implemented", "temperature");
    for (const field of ["tools", "response_format", "continue_final_message", "stop", "n", "echo", "prompt_logprobs"]) {
      if (body[field] !== undefined && body[field] !== null && body[field] !== false && !(field === "n" && body[field] === 1)) return this.refuse(res, 400, `fake vLLM: ${field} is not implemented on chat`, field);
    }
    if (body.add_generation_prompt === false) return this.refuse(res, 400, "fake vLLM: add_generation_prompt false is not implemented", "add_generation_prompt");
    if (!Array.isArray(body.messages) || body.messages.length === 0) return this.refuse(res, 400, "messages must be a non-empty list", "messages");
    const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? 16;
    if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) return this.refuse(res, 400, "max_tokens must be at least 1", "max_tokens");
    const topLogprobs = body.top_logprobs ?? 0;
    if (!Number.isInteger(topLogprobs) || (topLogprobs as number) < 0 || (topLogprobs as number) > this.maxLogprobs) return this.refuse(res, 400, "top_logprobs out of range", "top_logprobs");
    const ids = this.model.chatTokens(body.messages as ChatMessage[]);
    const generated = await this.model.generate(ids, maxTokens as number, false);
    const withIds = body.return_token_ids === true;
    const logprobs = body.logprobs === true;
    // vLLM lists the token it stopped on among the ids (and scores it) but writes no text for it.
    const steps = generated.tokens.map((token, i) => ({ token, text: this.model.tokenText(token), row: generated.rows[i]! }));
    if (generated.finish === "stop") steps.push({ token: this.model.eosToken, text: "", row: generated.rows.at(-1)! });
    const entry = (step: (typeof steps)[number]) => {
      const text = step.token === this.model.eosToken ? this.model.eosText : step.text;
      return {
        token: text,
        logprob: step.row.logprob(step.token),
        bytes: [...Buffer.from(text, "utf8")],
        top_logprobs: step.row.top(topLogprobs as number).map((t) => ({ token: this.model.tokenText(t.token), logprob: t.logprob, bytes: [...Buffer.from(this.model.tokenText(t.token), "utf8")] })),
      };
    };
    const usage = { prompt_tokens: ids.length, total_tokens: ids.length + steps.length, completion_tokens: steps.length };
    const id = `chatcmpl-fake-${this.http.requests.length}`;
    if (body.stream !== true) {
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created: 0,
        model: this.model.modelId,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: steps.map((s) => s.text).join(""), tool_calls: [] },
            logprobs: logprobs ? { content: steps.map(entry) } : null,
            finish_reason: generated.finish,
            stop_reason: null,
            ...(withIds ? { token_ids: steps.map((s) => s.token) } : {}),
          },
        ],
        usage,
        ...(withIds ? { prompt_token_ids: ids } : {}),
      });
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ id, object: "chat.completion.chunk", created: 0, model: this.model.modelId, choices: [choice], ...extra });
    send(chunk({ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }, withIds ? { prompt_token_ids: ids } : {}));
    steps.forEach((step, i) => {
      const last = i === steps.length - 1;
      send(
        chunk({
          index: 0,
          delta: { content: step.text },
          logprobs: logprobs ? { content: [entry(step)] } : null,
          finish_reason: last ? generated.finish : null,
          ...(last ? { stop_reason: null } : {}),
          ...(withIds ? { token_ids: [step.token] } : {}),
        }),
      );
    });
    const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
    if (streamOptions?.include_usage === true) send({ id, object: "chat.completion.chunk", created: 0, model: this.model.modelId, choices: [], usage });
    res.end("data: [DONE]\n\n");
  }

  /** vLLM's prompt-logprob dict at one position: the token there first, then the top k (one key each). */
  private entry(row: Distribution, token: number, k: number): Record<string, { logprob: number; rank: number; decoded_token: string }> {
    const out: Record<string, { logprob: number; rank: number; decoded_token: string }> = {};
    const put = (t: number) => {
      out[String(t)] = { logprob: row.logprob(t), rank: row.rank(t), decoded_token: this.model.tokenText(t) };
    };
    put(token);
    for (const t of row.top(k)) put(t.token);
    return out;
  }
}
