import { type StreamPart, TesseraError } from "@tessera/protocol";
import type { Token } from "node-llama-cpp";
import type { BackendEvent } from "../backends/http/assemble-stream.js";
import { errorPart } from "../backends/http/backend-error.js";
import { ConstrainedAnswer } from "./constrained-answer.js";
import type { OutputKind } from "./output-grammar.js";

/** How to read one constrained answer: what it is constrained to, whether it continues a prefix, the ids it ran on. */
export interface ConstrainedReading {
  output: Exclude<OutputKind, "free">;
  continuation: boolean;
  /** Prompt ids evaluated (prompt and prefix), reported as `usage.prompt_tokens`. */
  promptTokens: number;
}

/**
 * A grammar-constrained answer's decoded events (a server that lists each delta's token ids, the token it stopped
 * on already left out: vLLM's `/v1/completions`, SGLang's `/generate`) → stream parts, read exactly as the embedded
 * engine reads its own (constrained-answer.ts): calls held whole, the grammar's end (four newlines) stops the answer
 * with `stop`. The caller aborts its request when this returns, so a server that would go on writing newlines stops.
 * `usage.completion_tokens` counts the ids read up to the end (the server's own count when it ended by itself and
 * sent one); finish reasons: the grammar's end or EOG → `stop`, the token limit → `length`; the caller's abort →
 * what is held, usage so far, `cancelled`. Failures are error parts, never throws.
 */
export async function* readConstrainedEvents(kind: string, events: AsyncIterable<BackendEvent>, reading: ConstrainedReading, signal?: AbortSignal): AsyncGenerator<StreamPart> {
  const answer = new ConstrainedAnswer(reading.output, reading.continuation);
  let counted = 0;
  let reported: number | undefined;
  let finish: "stop" | "length" | undefined;
  try {
    read: for await (const event of events) {
      if (event.kind === "error") {
        yield errorPart(event.error);
        return;
      }
      if (event.usage) reported = event.usage.completion_tokens;
      if (event.text !== "" || event.tokens?.length) {
        counted += event.tokens?.length ?? 0;
        const out = answer.push({ text: event.text, ...(event.tokens ? { tokens: event.tokens as Token[] } : {}) });
        yield* out.parts;
        if (out.ended) {
          finish = "stop";
          reported = undefined;
          break read;
        }
      }
      if (event.finish === "stop" || event.finish === "length") finish = event.finish;
      else if (event.finish !== undefined) {
        yield errorPart(new TesseraError("internal_error", `${kind}: a constrained answer finished with ${event.finish}`));
        return;
      }
    }
  } catch (err) {
    if (!signal?.aborted) {
      yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", `${kind}: the stream broke off (${(err as Error).message})`));
      return;
    }
  }
  if (signal?.aborted) {
    yield* answer.finish(false);
    yield { type: "usage", prompt_tokens: reading.promptTokens, completion_tokens: counted };
    yield { type: "finish", reason: "cancelled" };
    return;
  }
  if (finish === undefined) {
    yield errorPart(new TesseraError("internal_error", `${kind}: the stream ended without saying why it stopped`));
    return;
  }
  yield* answer.finish(finish === "stop");
  yield { type: "usage", prompt_tokens: reading.promptTokens, completion_tokens: reported ?? counted };
  yield { type: "finish", reason: finish };
}
