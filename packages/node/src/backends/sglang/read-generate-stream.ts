import { TesseraError, type TokenAlternative, type TokenLogprob } from "@tessera/protocol";
import type { BackendEvent } from "../http/assemble-stream.js";
import { asLogprob } from "../openai-compatible/map-chunk.js";

/**
 * Reads the chunks of SGLang's streamed `POST /generate` (`data: {json}` lines, then `data: [DONE]`) into backend
 * events, one chunk at a time. Each chunk is `{text, output_ids, meta_info}` (tokenizer_manager's output processor):
 * - `meta_info.output_token_logprobs`: `[logprob, token_id, text|null]` per generated token; with
 *   `top_logprobs_num`, `meta_info.output_top_logprobs` per token a list of the same tuples, best first;
 * - `meta_info.prompt_tokens` and `meta_info.completion_tokens`: counts so far;
 * - `meta_info.finish_reason`: null until the last chunk, then `{type: "stop", matched}` (`matched` the token id it
 *   stopped on: EOS or a stop token id; a string for a stop string), `{type: "length", length}` or
 *   `{type: "abort", message, status_code?}`.
 * By default (`--incremental-streaming-output` off) `text`, `output_ids` and the logprob lists are CUMULATIVE (the whole
 * answer so far in every chunk); with the flag on they hold only the chunk's new tokens. Which one is read from the
 * counts: a chunk whose list is as long as `completion_tokens` is cumulative, one as long as the tokens not yet seen
 * is incremental (the first chunk is both, and reads the same either way); anything else is a malformed chunk.
 *
 * SGLang lists the token it stopped on (`matched`, an integer) among the ids and counts it in `completion_tokens`, but
 * writes no text for it (skip_special_tokens, or the detokenizer's trim of a matched stop id): it is left out of the
 * ids and of `usage`, as every other backend counts only the answer's tokens. Ids of a chunk without new text (bytes
 * held back mid-character) go with the next chunk that has text.
 */
export class GenerateStreamReader {
  private seen = 0;
  private textSoFar = "";
  private pendingIds: number[] = [];
  private pendingLogprobs: number[] = [];
  private pendingTokenLogprobs: TokenLogprob[] = [];

  constructor(
    private readonly kind: string,
    /** The client asked for token log-probabilities (then `return_text_in_logprobs` gave each token its text). */
    private readonly tokenLogprobs: boolean,
  ) {}

  /** One parsed chunk → one event; a chunk not in SGLang's shape is an `internal_error` event naming the field. */
  read(raw: unknown): BackendEvent {
    try {
      return this.chunk(raw);
    } catch (err) {
      if (err instanceof TesseraError) return { kind: "error", error: err };
      throw err;
    }
  }

  private malformed(field: string, detail: string): TesseraError {
    return new TesseraError("internal_error", `${this.kind}: malformed /generate chunk: ${field} ${detail}`, { param: field });
  }

  private chunk(raw: unknown): BackendEvent {
    const chunk = raw as { text?: unknown; meta_info?: Record<string, unknown> } | null;
    const meta = chunk?.meta_info;
    if (!meta || typeof meta !== "object") throw this.malformed("meta_info", "is missing");
    if (typeof chunk.text !== "string") throw this.malformed("text", "is not a string");
    const completion = meta.completion_tokens;
    const prompt = meta.prompt_tokens;
    if (!Number.isInteger(completion) || (completion as number) < 0) throw this.malformed("meta_info.completion_tokens", "is not a count");
    if (!Number.isInteger(prompt) || (prompt as number) < 0) throw this.malformed("meta_info.prompt_tokens", "is not a count");
    const entries = meta.output_token_logprobs;
    if (!Array.isArray(entries)) throw this.malformed("meta_info.output_token_logprobs", "is missing (return_logprob not honoured?)");

    const fresh = (completion as number) - this.seen;
    let cumulative: boolean;
    if (entries.length === fresh) cumulative = false;
    else if (entries.length === completion) cumulative = true;
    else throw this.malformed("meta_info.output_token_logprobs", `has ${entries.length} entries with ${String(completion)} tokens generated, ${this.seen} of them already read`);
    const newEntries = cumulative ? entries.slice(this.seen) : entries;
    let delta = chunk.text;
    if (cumulative && this.seen > 0) {
      if (!chunk.text.startsWith(this.textSoFar)) throw this.malformed("text", "does not continue the text already streamed");
      delta = chunk.text.slice(this.textSoFar.length);
    }
    const tops = this.tokenLogprobs ? this.topsOf(meta.output_top_logprobs, entries.length, cumulative) : undefined;

    newEntries.forEach((entry, i) => {
      const t = this.tuple("meta_info.output_token_logprobs", entry);
      this.pendingIds.push(t.token);
      this.pendingLogprobs.push(t.logprob);
      if (this.tokenLogprobs) this.pendingTokenLogprobs.push({ token: t.text ?? "", logprob: t.logprob, top_logprobs: tops?.[i] ?? [] });
    });
    this.seen = completion as number;
    this.textSoFar += delta;

    const event: BackendEvent = { kind: "chunk", text: delta };
    const finish = meta.finish_reason as { type?: unknown; matched?: unknown; message?: unknown; status_code?: unknown } | null | undefined;
    let stopTokens = 0;
    if (finish !== null && finish !== undefined) {
      if (finish.type === "abort") {
        const message = typeof finish.message === "string" ? finish.message : "request aborted";
        return { kind: "error", error: new TesseraError(finish.status_code === 400 ? "bad_request" : "internal_error", `${this.kind}: SGLang aborted the request (${message})`) };
      }
      if (finish.type === "stop") {
        event.finish = "stop";
        if (Number.isInteger(finish.matched) && this.pendingIds.at(-1) === finish.matched) {
          this.pendingIds.pop();
          this.pendingLogprobs.pop();
          this.pendingTokenLogprobs.pop();
          stopTokens = 1;
        }
      } else if (finish.type === "length") event.finish = "length";
      else throw this.malformed("meta_info.finish_reason", `has type ${JSON.stringify(finish.type)}`);
    }
    if (delta !== "" && this.pendingIds.length > 0) {
      event.tokens = this.pendingIds;
      event.logprobs = this.pendingLogprobs;
      if (this.tokenLogprobs) event.tokenLogprobs = this.pendingTokenLogprobs;
      this.pendingIds = [];
      this.pendingLogprobs = [];
      this.pendingTokenLogprobs = [];
    }
    event.usage = { prompt_tokens: prompt as number, completion_tokens: Math.max(0, (completion as number) - stopTokens) };
    return event;
  }

  /** The new tokens' alternatives, sliced like the entries; every position must be a list of tuples. */
  private topsOf(value: unknown, length: number, cumulative: boolean): TokenAlternative[][] {
    if (!Array.isArray(value) || value.length !== length) throw this.malformed("meta_info.output_top_logprobs", "does not list one entry per token (top_logprobs_num not honoured?)");
    return (cumulative ? value.slice(this.seen) : value).map((top) => {
      if (!Array.isArray(top)) throw this.malformed("meta_info.output_top_logprobs", "has an entry that is not a list");
      return top.map((t) => {
        const tuple = this.tuple("meta_info.output_top_logprobs", t);
        return { token: tuple.text ?? "", logprob: tuple.logprob };
      });
    });
  }

  private tuple(field: string, value: unknown): { logprob: number; token: number; text: string | undefined } {
    if (!Array.isArray(value) || value.length < 2) throw this.malformed(field, "has an entry that is not [logprob, token_id, text]");
    const [lp, token, text] = value as [unknown, unknown, unknown];
    const logprob = asLogprob(lp);
    if (logprob === undefined) throw this.malformed(field, "has a logprob that is not a number");
    if (!Number.isInteger(token) || (token as number) < 0) throw this.malformed(field, "has a token_id that is not a token id");
    return { logprob, token: token as number, text: typeof text === "string" ? text : undefined };
  }
}
