import { TesseraError, type StreamPart } from "@tessera/protocol";
import type { GenerateRequest } from "../adapter.js";
import { assembleStream, type BackendEvent } from "../http/assemble-stream.js";
import { backendErrorMessage, errorFromFetchFailure, errorFromResponse, errorPart, isErrorEvent } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";
import { readSseData } from "../http/read-body.js";
import type { ScoreHttp } from "../openai-compatible/score-http.js";
import { generateBody } from "./generate-body.js";
import { GenerateStreamReader } from "./read-generate-stream.js";

/**
 * Streams one answer from SGLang's native `POST /generate` on `inputIds` (generate-body.ts), so that every text delta
 * carries its token ids and log-probabilities (read-generate-stream.ts). `report`: the prompt ids, yielded as a
 * `prompt` part once SGLang has accepted the request, before any text. The stream keeps the adapter contract (text
 * deltas, usage, one finish; failures as error parts): an HTTP error before the stream is its mapped code (a 400 is
 * `bad_request`), an `{"error": …}` chunk or a malformed chunk mid-stream is `internal_error`, the caller's abort ends
 * it with usage so far and `cancelled` (the fetch is aborted, and SGLang aborts a request whose client went away).
 */
export async function* streamGenerate(http: ScoreHttp, request: GenerateRequest, inputIds: readonly number[], report?: number[]): AsyncGenerator<StreamPart> {
  let res: Response;
  try {
    res = await openGenerate(http, request, inputIds);
  } catch (err) {
    yield* failedOpen(http, request, err);
    return;
  }
  if (report) yield { type: "prompt", tokens: report };
  yield* assembleStream(http.kind, generateEvents(http.kind, res.body!, new GenerateStreamReader(http.kind, request.sampling.logprobs === true)), request.signal);
}

/**
 * `POST /generate` on `inputIds`, under `ebnf` when given: the response once SGLang has accepted the request (a body
 * to read), else a TesseraError (a refusal is its mapped code: `bad_request` for a 400). `signal` defaults to the
 * request's.
 */
export async function openGenerate(http: ScoreHttp, request: GenerateRequest, inputIds: readonly number[], ebnf?: string, signal: AbortSignal | undefined = request.signal): Promise<Response> {
  const url = joinUrl(http.baseURL, "/generate");
  let res: Response;
  try {
    res = await http.fetch(url, { method: "POST", headers: http.headers, body: JSON.stringify(generateBody(inputIds, request.sampling, ebnf)), signal });
  } catch (err) {
    throw errorFromFetchFailure(http.kind, url, err);
  }
  if (!res.ok) throw await errorFromResponse(http.kind, res);
  if (!res.body) throw new TesseraError("internal_error", `${http.kind}: empty response body`);
  return res;
}

/** What a stream yields when `openGenerate` failed: `cancelled` when the caller aborted, else the error. */
export function* failedOpen(http: ScoreHttp, request: GenerateRequest, err: unknown): Generator<StreamPart> {
  if (request.signal?.aborted) {
    yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
    yield { type: "finish", reason: "cancelled" };
    return;
  }
  yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", `${http.kind}: ${String(err)}`));
}

/**
 * `POST /generate` on `inputIds` under `ebnf`, up to its first event. SGLang refuses a grammar its backend cannot compile
 * either with a 400 or, once the stream has begun, by aborting the request (the scheduler's "Invalid grammar request",
 * status 400), which its HTTP server sends as the stream's first event, an error. Either way, an error before any token
 * is `refused` (the caller then answers natively); otherwise the events, the first included. Other failures throw.
 */
export async function openConstrainedGenerate(
  http: ScoreHttp,
  request: GenerateRequest,
  inputIds: readonly number[],
  ebnf: string,
  signal: AbortSignal,
): Promise<{ refused: TesseraError } | { events: AsyncIterable<BackendEvent> }> {
  let res: Response;
  try {
    res = await openGenerate(http, request, inputIds, ebnf, signal);
  } catch (err) {
    if (err instanceof TesseraError && err.code === "bad_request" && !request.signal?.aborted) return { refused: err };
    throw err;
  }
  const events = generateEvents(http.kind, res.body!, new GenerateStreamReader(http.kind, false))[Symbol.asyncIterator]();
  const first = await events.next();
  if (!first.done && first.value.kind === "error") return { refused: first.value.error };
  return {
    events: (async function* () {
      if (!first.done) yield first.value;
      yield* { [Symbol.asyncIterator]: () => events };
    })(),
  };
}

async function* generateEvents(kind: string, body: ReadableStream<Uint8Array>, reader: GenerateStreamReader): AsyncGenerator<BackendEvent> {
  for await (const data of readSseData(body)) {
    if (data === "[DONE]") return;
    let raw: unknown;
    try {
      raw = JSON.parse(data);
    } catch {
      yield { kind: "error", error: new TesseraError("internal_error", `${kind}: malformed /generate chunk: not JSON`) };
      return;
    }
    if (isErrorEvent(raw)) {
      yield { kind: "error", error: new TesseraError("internal_error", `${kind}: ${backendErrorMessage(raw) ?? "error mid-stream"}`) };
      return;
    }
    const event = reader.read(raw);
    yield event;
    if (event.kind === "error") return;
  }
}
