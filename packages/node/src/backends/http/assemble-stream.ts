import { randomBytes } from "node:crypto";
import { TesseraError, type FinishReason, type StreamPart, type TokenLogprob, type ToolCall } from "@tessera/protocol";
import { errorPart } from "./backend-error.js";

/**
 * A piece of a tool call as servers stream them: the first piece for an `index` names the call (id, name), later ones
 * append to its arguments. A server that sends whole calls sends one piece each.
 */
export interface ToolCallPiece {
  index: number;
  id?: string;
  name?: string;
  arguments?: string;
}

/** One decoded backend event, already mapped out of its wire format by the adapter. */
export type BackendEvent =
  | {
      kind: "chunk";
      text: string;
      logprobs?: number[];
      tokens?: number[];
      /** Each token's text, log-probability and alternatives, where the server sent them. */
      tokenLogprobs?: TokenLogprob[];
      finish?: FinishReason;
      usage?: { prompt_tokens: number; completion_tokens: number };
      toolCalls?: ToolCallPiece[];
    }
  | { kind: "error"; error: TesseraError };

/**
 * Turns a backend's decoded events into the stream-part contract every adapter keeps:
 * text-delta parts, then one usage part, then exactly one finish part; or, on failure, an error part as the last
 * part (never a throw). Specifically:
 * - the caller aborting (`signal`) ends the stream with usage so far and `finish: cancelled`;
 * - an error event, or the body breaking off (reset, crash), is an error part (`internal_error` unless mapped);
 * - a body that ends cleanly without a finish reason is an error part too: the answer may be truncated;
 * - tool-call pieces are assembled by index and sent as one tool-calls part before usage (an id the server left
 *   out is made up, as clients need one to answer the call);
 * - usage comes from the backend; where it sent none, completion tokens are counted from the deltas (one per
 *   logprob entry when present, else one per non-empty delta) and prompt tokens are 0, documented per backend.
 */
export async function* assembleStream(
  backend: string,
  events: AsyncIterable<BackendEvent>,
  signal: AbortSignal | undefined,
): AsyncGenerator<StreamPart> {
  let finish: FinishReason | undefined;
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  let counted = 0;
  const calls = new Map<number, { id?: string; name?: string; arguments: string }>();
  try {
    for await (const event of events) {
      if (event.kind === "error") {
        yield errorPart(event.error);
        return;
      }
      if (event.text !== "") {
        counted += event.logprobs?.length ?? 1;
        const part: StreamPart = { type: "text-delta", text: event.text };
        if (event.logprobs) part.logprobs = event.logprobs;
        if (event.tokens) part.tokens = event.tokens;
        if (event.tokenLogprobs) part.token_logprobs = event.tokenLogprobs;
        yield part;
      }
      for (const piece of event.toolCalls ?? []) {
        const call = calls.get(piece.index) ?? { arguments: "" };
        call.id ??= piece.id;
        call.name ??= piece.name;
        call.arguments += piece.arguments ?? "";
        calls.set(piece.index, call);
      }
      if (event.usage) usage = event.usage;
      if (event.finish) finish = event.finish;
    }
  } catch (err) {
    if (!signal?.aborted) {
      const e = err instanceof TesseraError ? err : new TesseraError("internal_error", `${backend}: stream broke off (${describe(err)})`, { cause: err });
      yield errorPart(e);
      return;
    }
  }
  if (signal?.aborted) {
    yield { type: "usage", prompt_tokens: usage?.prompt_tokens ?? 0, completion_tokens: usage?.completion_tokens ?? counted };
    yield { type: "finish", reason: "cancelled" };
    return;
  }
  if (finish === undefined) {
    yield errorPart(new TesseraError("internal_error", `${backend}: stream ended before the answer finished`));
    return;
  }
  if (calls.size > 0) {
    const assembled: ToolCall[] = [];
    for (const [, call] of [...calls].sort(([a], [b]) => a - b)) {
      if (!call.name) {
        yield errorPart(new TesseraError("internal_error", `${backend}: a tool call came without a function name`));
        return;
      }
      assembled.push({ id: call.id ?? `call_${randomBytes(12).toString("base64url")}`, type: "function", function: { name: call.name, arguments: call.arguments || "{}" } });
    }
    yield { type: "tool-calls", calls: assembled };
  }
  yield { type: "usage", prompt_tokens: usage?.prompt_tokens ?? 0, completion_tokens: usage?.completion_tokens ?? counted };
  yield { type: "finish", reason: finish };
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string } } | undefined)?.cause;
  return cause?.code ?? (err as Error | undefined)?.message ?? String(err);
}
