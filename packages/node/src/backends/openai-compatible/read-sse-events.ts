import { TesseraError } from "@tessera/protocol";
import type { BackendEvent } from "../http/assemble-stream.js";
import { backendErrorMessage, isErrorEvent } from "../http/backend-error.js";
import { readSseData } from "../http/read-body.js";
import type { ChunkContent } from "./map-chunk.js";

/**
 * An OpenAI-compatible SSE body (chat or text completion chunks, decoded by `map`) → backend events. Server-listed
 * token ids (`tokenIds`: vLLM's `return_token_ids`) become each delta's `tokens`, with two corrections for how vLLM
 * lists them (vllm/v1/engine/detokenizer.py): the token it stopped on (EOS, or a stop token id: `finish_reason` "stop"
 * with a `stop_reason` that is not a string) is listed but never in the text, so it is dropped, and taken off
 * `usage.completion_tokens` too (Tessera counts the answer's tokens, as every other backend); ids of a chunk without
 * text (bytes held back mid-character) go with the next chunk that has text.
 */
export async function* readSseEvents(kind: string, body: ReadableStream<Uint8Array>, map: (raw: unknown) => ChunkContent, tokenIds: boolean): AsyncGenerator<BackendEvent> {
  let pendingIds: number[] = [];
  let stopTokens = 0;
  for await (const data of readSseData(body)) {
    if (data === "[DONE]") return;
    const raw = JSON.parse(data) as unknown;
    if (isErrorEvent(raw)) {
      yield { kind: "error", error: new TesseraError("internal_error", `${kind}: ${backendErrorMessage(raw) ?? "error mid-stream"}`) };
      return;
    }
    const c = map(raw);
    const event: BackendEvent = { kind: "chunk", text: c.text };
    if (c.logprobs) event.logprobs = c.logprobs;
    if (c.tokens) event.tokens = c.tokens;
    if (tokenIds && (c.tokenIds || c.finish)) {
      pendingIds.push(...(c.tokenIds ?? []));
      // The stop token has no text, so it is still pending, whether it came in this chunk or one before it.
      if (c.finish === "stop" && typeof c.stopReason !== "string" && pendingIds.length > 0) {
        pendingIds.pop();
        stopTokens++;
      }
      if (c.text !== "" && c.tokenIds) {
        event.tokens = pendingIds;
        pendingIds = [];
      }
    }
    if (c.usage && stopTokens > 0) c.usage = { ...c.usage, completion_tokens: Math.max(0, c.usage.completion_tokens - stopTokens) };
    if (c.tokenLogprobs) event.tokenLogprobs = c.tokenLogprobs;
    if (c.finish) event.finish = c.finish;
    if (c.usage) event.usage = c.usage;
    if (c.toolCalls) event.toolCalls = c.toolCalls;
    yield event;
  }
}
