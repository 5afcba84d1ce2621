import type { ChatMessage } from "@tessera/protocol";
import { type RouteHandler, sendJson } from "./fake-http-server.js";
import { IdLevelFakeServer } from "./id-level-fake-server.js";
import { type Distribution, type Generated, GrammarError, type GrammarGenerated, type IdLevelModel } from "./id-level-model.js";

/**
 * An id-level fake of SGLang's server for the endpoints a spot-check reference uses, backed by a real model
 * (id-level-model.ts). Its answers follow SGLang's wire format (sglang/srt: io_struct's GenerateReqInput, the
 * scheduler's input-logprob bookkeeping, the tokenizer manager's `[logprob, token_id, text]` tuples, the OpenAI
 * serving_chat and serving_tokenize):
 * - `POST /generate` with `input_ids` (or `text`), `sampling_params.max_new_tokens`, `return_logprob`,
 *   `logprob_start_len` (default −1: the last input id only), `top_logprobs_num`, `return_text_in_logprobs`:
 *   `meta_info.input_token_logprobs` is one `[logprob, token_id, text|null]` per input id from `logprob_start_len`,
 *   the first padded with a null logprob; `meta_info.input_top_logprobs` the top `top_logprobs_num` per entry, best
 *   first, null for the first; `output_token_logprobs` / `output_top_logprobs` likewise for the generated tokens.
 * - `POST /generate` with `stream: true`, as an SGLang node generates (sglang-generate.ts): `data: {text, output_ids,
 *   meta_info}` chunks, one per token (`--stream-interval 1`), then `data: [DONE]`. As SGLang by default, each chunk is
 *   CUMULATIVE (the whole answer so far in `text`, `output_ids` and `meta_info.output_token_logprobs` /
 *   `output_top_logprobs`), or only the new token with `incrementalStreamingOutput` (`--incremental-streaming-output`).
 *   An answer that stopped lists EOS as its last token (its logprob tuple and `output_ids`, counted in
 *   `completion_tokens`) with no text, and finishes `{type: "stop", matched: <EOS id>}`; one cut at `max_new_tokens`
 *   finishes `{type: "length", length}`. `sampling_params` takes `max_new_tokens`, `temperature` (0 only), `top_p`,
 *   `sampling_seed` (greedy decoding does not use them), and `ebnf`: a GBNF grammar (SGLang's xgrammar reads GBNF; here
 *   compiled by node-llama-cpp, as the embedded engine compiles it) the greedy answer runs under, streamed, stopping
 *   at the end-of-generation token, which is listed as `matched`; one that does not compile is a 400, and
 *   `refuseGrammar` refuses any, with a 400 or in the stream. Anything else (`json_schema`, `stop`, …) is refused by name.
 *   `holdAfter` stops writing after that many tokens until the client goes away (`disconnects` counts it).
 * - `POST /v1/chat/completions` (not streamed) with `return_prompt_token_ids` (SGLang 0.5.13+): the prompt's ids as
 *   `choices[0].prompt_token_ids`.
 * - `POST /v1/tokenize` (`prompt`, `add_special_tokens`): `{tokens, count, max_model_len}`.
 * - `GET /health`, `GET /v1/models`.
 * It decodes greedily only (temperature 0) and streams /generate only: anything else is refused by name with 400, never
 * ignored. `fault` makes it answer wrongly on purpose, for the scorer's bad-input tests.
 */
export type SglangScoringFault =
  /** `meta_info` without `input_token_logprobs` (return_logprob not honoured). */
  | "no-input-logprobs"
  /** The input entries without SGLang's leading null pad: one entry fewer, each shifted by one. */
  | "unpadded-input-logprobs"
  /** An older SGLang: chat completions carry no `prompt_token_ids`. */
  | "no-prompt-token-ids"
  /** A streamed /generate chunk whose `meta_info` lacks `output_token_logprobs`. */
  | "chunk-without-logprobs"
  /** A streamed /generate that sends `{"error": {"message"}}` after its first token (SGLang's mid-stream error). */
  | "error-mid-stream";

export interface FakeSglangScoringOptions {
  model: IdLevelModel;
}


type Tuple = [number | null, number, string | null];

export class FakeSglangScoring extends IdLevelFakeServer {
  fault: SglangScoringFault | undefined;
  /** Stream chunks with only the new tokens (SGLang's `--incremental-streaming-output`); default cumulative. */
  incrementalStreamingOutput = false;
  /** A streamed /generate writes this many tokens, then waits for the client to go away. */
  holdAfter: number | undefined;
  /**
   * Refuse `sampling_params.ebnf`, as an SGLang whose grammar backend cannot compile the text does: `"http"` with a 400,
   * `"stream"` as SGLang's scheduler does once a stream has begun (it aborts the request with "Invalid grammar
   * request", which the HTTP server sends as the stream's one `{"error": {"message"}}` event).
   */
  refuseGrammar: false | "http" | "stream" = false;
  /** Streamed /generate requests whose client went away before the answer ended. */
  disconnects = 0;

  private constructor(options: FakeSglangScoringOptions) {
    super(options.model, "sglang");
  }

  static start(options: FakeSglangScoringOptions): Promise<FakeSglangScoring> {
    return new FakeSglangScoring(options).listen();
  }

  protected route(method: string, path: string): RouteHandler | undefined {
    if (method === "POST" && path === "/v1/tokenize") return (_req, res, body) => this.tokenize(res, body as Record<string, unknown>);
    if (method === "POST" && path === "/v1/chat/completions") return (_req, res, body) => this.chat(res, body as Record<string, unknown>);
    if (method === "POST" && path === "/generate") return (_req, res, body) => this.generate(res, body as Record<string, unknown>);
    return undefined;
  }

  private refuse(res: Parameters<RouteHandler>[1], status: number, message: string): void {
    // SGLang's OpenAI-side ErrorResponse is top-level: {"object": "error", "message", "type", "code"}.
    sendJson(res, status, { object: "error", message, type: "BadRequestError", param: null, code: status });
  }

  private tokenize(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): void {
    if (typeof body.prompt !== "string") return this.refuse(res, 400, `Invalid prompt type: ${typeof body.prompt}. Expected str or List[str].`);
    const tokens = this.model.tokenize(body.prompt, body.add_special_tokens !== false);
    sendJson(res, 200, { tokens, count: tokens.length, max_model_len: this.model.contextSize });
  }

  private async chat(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): Promise<void> {
    if (body.stream === true) return this.refuse(res, 400, "fake SGLang: streaming is not implemented by this id-level fake");
    if ((body.temperature ?? 1) !== 0) return this.refuse(res, 400, "fake SGLang: only greedy decoding (temperature 0) is implemented");
    if (!Array.isArray(body.messages) || body.messages.length === 0) return this.refuse(res, 400, "messages must be a non-empty list");
    for (const field of ["tools", "response_format", "logprobs", "continue_final_message", "n", "stop"]) {
      if (body[field] !== undefined && body[field] !== null && body[field] !== false && !(field === "n" && body[field] === 1)) return this.refuse(res, 400, `fake SGLang: ${field} is not implemented`);
    }
    const maxTokens = body.max_tokens ?? 16;
    if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) return this.refuse(res, 400, "max_tokens must be at least 1");
    const ids = this.model.chatTokens(body.messages as ChatMessage[]);
    const generated = await this.model.generate(ids, maxTokens as number, false);
    sendJson(res, 200, {
      id: `chatcmpl-fake-${this.http.requests.length}`,
      object: "chat.completion",
      created: 0,
      model: this.model.modelId,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: this.model.detokenize(generated.tokens), reasoning_content: null, tool_calls: null },
          logprobs: null,
          finish_reason: generated.finish,
          matched_stop: generated.finish === "stop" ? this.model.eosToken : null,
          ...(body.return_prompt_token_ids === true && this.fault !== "no-prompt-token-ids" ? { prompt_token_ids: ids } : {}),
        },
      ],
      usage: { prompt_tokens: ids.length, total_tokens: ids.length + generated.tokens.length, completion_tokens: generated.tokens.length },
    });
  }

  private async generate(res: Parameters<RouteHandler>[1], body: Record<string, unknown>): Promise<void> {
    if (body.stream !== undefined && typeof body.stream !== "boolean") return this.refuse(res, 400, "stream must be a boolean");
    let ids: number[];
    if (Array.isArray(body.input_ids) && body.input_ids.length > 0 && body.input_ids.every((t) => Number.isInteger(t) && (t as number) >= 0)) ids = body.input_ids as number[];
    else if (typeof body.text === "string") ids = this.model.tokenize(body.text, true);
    else return this.refuse(res, 400, "Either text or input_ids should be provided.");
    if (ids.some((t) => t >= this.model.vocabSize)) return this.refuse(res, 400, `The input_ids ${ids.find((t) => t >= this.model.vocabSize)} is out of vocabulary`);
    const sampling = (body.sampling_params ?? {}) as Record<string, unknown>;
    for (const field of Object.keys(sampling)) {
      if (!["max_new_tokens", "temperature", "ignore_eos", "top_p", "sampling_seed", "ebnf"].includes(field)) return this.refuse(res, 400, `fake SGLang: sampling_params.${field} is not implemented`);
    }
    if ((sampling.temperature ?? 1) !== 0) return this.refuse(res, 400, "fake SGLang: only greedy decoding (temperature 0) is implemented");
    const maxNew = sampling.max_new_tokens ?? 128;
    if (!Number.isInteger(maxNew) || (maxNew as number) < 1) return this.refuse(res, 400, "fake SGLang: max_new_tokens must be at least 1");
    if (ids.length + (maxNew as number) > this.model.contextSize) {
      return this.refuse(res, 400, `The input (${ids.length} tokens) is longer than the model's context length (${this.model.contextSize} tokens).`);
    }
    const returnLogprob = body.return_logprob === true;
    const topNum = body.top_logprobs_num ?? 0;
    if (!Number.isInteger(topNum) || (topNum as number) < 0) return this.refuse(res, 400, "top_logprobs_num must be a non-negative integer");
    let start = body.logprob_start_len ?? -1;
    if (!Number.isInteger(start)) return this.refuse(res, 400, "logprob_start_len must be an integer");
    if ((start as number) === -1) start = ids.length - 1;
    if ((start as number) < 0 || (start as number) >= ids.length) return this.refuse(res, 400, `logprob_start_len (${String(start)}) is not within the ${ids.length} input ids`);
    const withText = body.return_text_in_logprobs === true;
    const tuple = (logprob: number | null, token: number): Tuple => [logprob, token, withText ? this.model.tokenText(token) : null];
    const topOf = (row: Distribution): Tuple[] => row.top(topNum as number).map((t) => tuple(t.logprob, t.token));

    if (sampling.ebnf !== undefined) {
      if (typeof sampling.ebnf !== "string") return this.refuse(res, 400, "sampling_params.ebnf must be a string");
      if (this.refuseGrammar === "http") return this.refuse(res, 400, "Invalid grammar request: the grammar backend cannot compile this ebnf.");
      if (this.refuseGrammar === "stream") {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write(`data: ${JSON.stringify({ error: { message: "Invalid grammar request: the grammar backend cannot compile this ebnf." } })}\n\n`);
        res.end("data: [DONE]\n\n");
        return;
      }
      if (body.stream !== true || sampling.ignore_eos === true) return this.refuse(res, 400, "fake SGLang: a grammar answer is only streamed, with EOS, by this fake");
      let underGrammar: GrammarGenerated;
      try {
        underGrammar = await this.model.generateUnderGrammar(ids, maxNew as number, sampling.ebnf);
      } catch (error) {
        if (error instanceof GrammarError) return this.refuse(res, 400, `Invalid grammar request: ${error.message}`);
        throw error;
      }
      // The model's own distributions at each step (the stop token's included), for the logprob tuples.
      const steps = underGrammar.stopToken === undefined ? underGrammar.tokens : [...underGrammar.tokens, underGrammar.stopToken];
      const rows = await this.model.rows([...ids, ...steps], ids.length - 1, ids.length - 1 + steps.length);
      const generated: Generated = { tokens: underGrammar.tokens, finish: underGrammar.finish, rows };
      return this.stream(res, ids, generated, maxNew as number, returnLogprob, tuple, topNum as number > 0 ? topOf : undefined, underGrammar.stopToken, ids);
    }
    const generated = await this.model.generate(ids, maxNew as number, sampling.ignore_eos === true);
    if (body.stream === true) return this.stream(res, ids, generated, maxNew as number, returnLogprob, tuple, topNum as number > 0 ? topOf : undefined);
    const meta: Record<string, unknown> = {
      id: `fake-${this.http.requests.length}`,
      finish_reason: generated.finish === "stop" ? { type: "stop", matched: this.model.eosToken } : { type: "length", length: maxNew },
      prompt_tokens: ids.length,
      completion_tokens: generated.tokens.length,
      cached_tokens: 0,
    };
    if (returnLogprob) {
      const s = start as number;
      const rows = await this.model.rows(ids, s, ids.length - 1);
      let input: Tuple[] = [tuple(null, ids[s]!), ...rows.map((row, i) => tuple(row.logprob(ids[s + i + 1]!), ids[s + i + 1]!))];
      let inputTop: Array<Tuple[] | null> | undefined = (topNum as number) > 0 ? [null, ...rows.map(topOf)] : undefined;
      if (this.fault === "unpadded-input-logprobs") {
        input = input.slice(1);
        inputTop = inputTop?.slice(1);
      }
      if (this.fault !== "no-input-logprobs") meta.input_token_logprobs = input;
      meta.output_token_logprobs = generated.tokens.map((t, i) => tuple(generated.rows[i]!.logprob(t), t));
      if (inputTop) {
        meta.input_top_logprobs = inputTop;
        meta.output_top_logprobs = generated.tokens.map((_, i) => topOf(generated.rows[i]!));
      }
    }
    sendJson(res, 200, { text: this.model.detokenize(generated.tokens), output_ids: generated.tokens, meta_info: meta });
  }

  /** SGLang's streamed /generate (see the class comment): one chunk per token, EOS listed last without text. */
  private stream(
    res: Parameters<RouteHandler>[1],
    ids: number[],
    generated: Generated,
    maxNew: number,
    returnLogprob: boolean,
    tuple: (logprob: number | null, token: number) => Tuple,
    topOf: ((row: Distribution) => Tuple[]) | undefined,
    stopToken: number = this.model.eosToken,
    /** Ids the answer's text is detokenised after (a grammar answer: its prompt); none by default. */
    context?: readonly number[],
  ): void {
    const steps = generated.tokens.map((token, i) => ({ token, row: generated.rows[i]! }));
    if (generated.finish === "stop") steps.push({ token: stopToken, row: generated.rows.at(-1)! });
    const answer = generated.tokens;
    // The detokenizer writes text only once it is whole: a trailing incomplete character waits for the next token.
    const textAfter = (n: number) => this.model.detokenize(answer.slice(0, Math.min(n, answer.length)), context).replace(/\uFFFD+$/u, "");
    const rid = `fake-${this.http.requests.length}`;
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let closed = false;
    res.on("close", () => {
      if (!res.writableEnded) {
        closed = true;
        this.disconnects++;
      }
    });
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    let written = "";
    for (let i = 0; i < steps.length; i++) {
      if (this.holdAfter !== undefined && i === this.holdAfter) return; // until the client goes away (counted above)
      if (closed) return;
      const last = i === steps.length - 1;
      const from = this.incrementalStreamingOutput ? i : 0;
      const text = textAfter(i + 1);
      const meta: Record<string, unknown> = {
        id: rid,
        finish_reason: last ? (generated.finish === "stop" ? { type: "stop", matched: stopToken } : { type: "length", length: maxNew }) : null,
        prompt_tokens: ids.length,
        weight_version: "default",
        completion_tokens: i + 1,
        cached_tokens: 0,
      };
      if (returnLogprob && this.fault !== "chunk-without-logprobs") {
        meta.output_token_logprobs = steps.slice(from, i + 1).map((s) => tuple(s.row.logprob(s.token), s.token));
        if (topOf) meta.output_top_logprobs = steps.slice(from, i + 1).map((s) => topOf(s.row));
      }
      send({ text: this.incrementalStreamingOutput ? text.slice(written.length) : text, output_ids: steps.slice(from, i + 1).map((s) => s.token), meta_info: meta });
      written = text;
      if (this.fault === "error-mid-stream") {
        send({ error: { message: "fake SGLang: the scheduler failed mid-stream" } });
        break;
      }
    }
    res.end("data: [DONE]\n\n");
  }
}
