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
  const url = joinUrl(http.baseURL, "/generate");
  let res: Response;
  try {
    res = await http.fetch(url, { method: "POST", headers: http.headers, body: JSON.stringify(generateBody(inputIds, request.sampling)), signal: request.signal });
    if (!res.ok) throw await errorFromResponse(http.kind, res);
  } catch (err) {
    if (request.signal?.aborted) {
      yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
      yield { type: "finish", reason: "cancelled" };
      return;
    }
    yield errorPart(err instanceof TesseraError ? err : errorFromFetchFailure(http.kind, url, err));
    return;
  }
  if (!res.body) {
    yield errorPart(new TesseraError("internal_error", `${http.kind}: empty response body`));
    return;
  }
  if (report) yield { type: "prompt", tokens: report };
  yield* assembleStream(http.kind, events(http.kind, res.body, new GenerateStreamReader(http.kind, request.sampling.logprobs === true)), request.signal);
}

async function* events(kind: string, body: ReadableStream<Uint8Array>, reader: GenerateStreamReader): AsyncGenerator<BackendEvent> {
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
