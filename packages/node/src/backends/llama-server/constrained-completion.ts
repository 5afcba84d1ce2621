import { type StreamPart, TesseraError } from "@tessera/protocol";
import type { Token } from "node-llama-cpp";
import type { GenerateRequest } from "../adapter.js";
import { ConstrainedAnswer } from "../../constrained/constrained-answer.js";
import type { OutputKind } from "../../constrained/output-grammar.js";
import { backendErrorMessage, errorFromFetchFailure, errorFromResponse, errorPart, isErrorEvent } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";
import { readSseData } from "../http/read-body.js";
import { continuesAnAnswer } from "./prefix-replay.js";

export interface LlamaServerConstrainedOptions {
  baseURL: string;
  fetch: typeof globalThis.fetch;
  headers: Record<string, string>;
  kind: string;
}

/** What to run: the prompt (ids, then the prefix's ids or text), the grammar text, and how to read the answer. */
export interface ConstrainedRun {
  prompt: ReadonlyArray<number | string>;
  grammar: string;
  output: Exclude<OutputKind, "free">;
  /** The answer continues another node's prefix (it is read as text from the first token, as the embedded engine does). */
  continuation: boolean;
}

/** One chunk of llama-server's streamed native `POST /completion` (server-task.cpp `to_json_non_oaicompat`). */
interface Chunk {
  content?: unknown;
  tokens?: unknown;
  stop?: unknown;
  stop_type?: unknown;
  tokens_predicted?: unknown;
  tokens_evaluated?: unknown;
}

/**
 * A grammar-constrained answer on llama-server, read into stream parts exactly as the embedded engine reads its own
 * (constrained/constrained-answer.ts): `POST /completion` with the prompt ids and `grammar` (the one text
 * constrained/output-grammar.ts writes, which the embedded engine compiles; llama.cpp starts it at rule `root`).
 *
 * The native route, not `/v1/completions`, because each streamed chunk there says how many tokens the server has
 * generated (`tokens_predicted`) beside its token's id, so:
 * - the grammar's end (four newlines, which node-llama-cpp's JSON grammars then let run on as `[\n]*`) is found here,
 *   as on the embedded engine; the request is then aborted, so the server stops, and the count is the chunk's;
 * - a chunk whose count moved by more than its ids (llama-server sends nothing for a token whose text ends
 *   mid-character, then its bytes with the next token's chunk) carries no ids, rather than wrong ones;
 * - the end-of-generation token, which the server streams as an empty chunk and counts, is neither relayed nor
 *   counted (the embedded engine does neither); it is known by the last chunk's `stop_type: "eos"`.
 * Finish reasons as on the embedded engine: the grammar's end or EOG → `stop`, `n_predict` or the context → `length`.
 */
export function createLlamaServerConstrainedCompletion(options: LlamaServerConstrainedOptions) {
  const url = joinUrl(options.baseURL, "/completion");
  const { kind } = options;
  return async function* constrainedCompletion(request: GenerateRequest, run: ConstrainedRun): AsyncGenerator<StreamPart> {
    const { sampling } = request;
    const stopServer = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, stopServer.signal]) : stopServer.signal;
    const body = {
      prompt: run.prompt,
      n_predict: sampling.max_tokens,
      temperature: sampling.temperature,
      top_p: sampling.top_p,
      ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
      grammar: run.grammar,
      stream: true,
      cache_prompt: continuesAnAnswer(request),
    };
    const cancelled = (completion: number, prompt: number): StreamPart[] => [
      { type: "usage", prompt_tokens: prompt, completion_tokens: completion },
      { type: "finish", reason: "cancelled" },
    ];
    let res: Response;
    try {
      res = await options.fetch(url, { method: "POST", headers: options.headers, body: JSON.stringify(body), signal });
      if (!res.ok) throw await errorFromResponse(kind, res);
      if (!res.body) throw new TesseraError("internal_error", `${kind}: empty response body`);
    } catch (err) {
      if (request.signal?.aborted) {
        yield* cancelled(0, 0);
        return;
      }
      yield errorPart(errorFromFetchFailure(kind, url, err));
      return;
    }

    const answer = new ConstrainedAnswer(run.output, run.continuation);
    let predicted = 0;
    let evaluated = run.prompt.length;
    /** An empty chunk waits for the next: it is the EOG token when the last chunk says the answer ended on one. */
    let empty: { tokens?: Token[] } | undefined;
    let finish: "stop" | "length" | undefined;
    try {
      read: for await (const data of readSseData(res.body)) {
        if (data === "[DONE]") continue;
        const raw = JSON.parse(data) as unknown;
        if (isErrorEvent(raw)) {
          yield errorPart(new TesseraError("internal_error", `${kind}: ${backendErrorMessage(raw) ?? "error mid-stream"}`));
          return;
        }
        const chunk = raw as Chunk;
        const count = Number.isInteger(chunk.tokens_predicted) ? (chunk.tokens_predicted as number) : predicted;
        if (Number.isInteger(chunk.tokens_evaluated)) evaluated = chunk.tokens_evaluated as number;
        if (chunk.stop === true) {
          const eos = chunk.stop_type === "eos";
          if (empty && !eos) yield* answer.push({ text: "", ...empty }).parts;
          predicted = eos ? count - 1 : count;
          finish = chunk.stop_type === "limit" ? "length" : "stop";
          break;
        }
        const ids = Array.isArray(chunk.tokens) && chunk.tokens.every((t) => Number.isInteger(t)) ? (chunk.tokens as Token[]) : undefined;
        const exact = ids !== undefined && ids.length === count - predicted ? { tokens: ids } : {};
        predicted = count;
        const text = typeof chunk.content === "string" ? chunk.content : "";
        const deltas = empty ? [{ text: "", ...empty }] : [];
        empty = undefined;
        if (text === "") empty = exact;
        else deltas.push({ text, ...exact });
        for (const delta of deltas) {
          const out = answer.push(delta);
          yield* out.parts;
          if (out.ended) {
            finish = "stop";
            break read;
          }
        }
      }
    } catch (err) {
      if (!request.signal?.aborted) {
        yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", `${kind}: the stream broke off (${(err as Error).message})`));
        return;
      }
    } finally {
      // The grammar's end is found here, not by the server, which would go on writing newlines: stop it.
      stopServer.abort();
    }
    if (request.signal?.aborted) {
      yield* answer.finish(false);
      yield* cancelled(predicted, evaluated);
      return;
    }
    if (finish === undefined) {
      yield errorPart(new TesseraError("internal_error", `${kind}: the stream ended without saying why it stopped`));
      return;
    }
    yield* answer.finish(finish === "stop");
    yield { type: "usage", prompt_tokens: evaluated, completion_tokens: predicted };
    yield { type: "finish", reason: finish };
  };
}
