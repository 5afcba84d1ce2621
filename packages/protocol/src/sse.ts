/**
 * Server-sent events, both formats Tessera speaks:
 * - native (`/api/v1/jobs…`): `data: {"text":"…"}` per chunk, `data: [DONE]` at the end,
 *   `data: {"error":"node_disconnected","message":"…"}` on failure;
 * - OpenAI (`/v1/chat/completions`): `data: <chat.completion.chunk>` per chunk, `data: [DONE]`.
 * Keep-alive lines are SSE comments (`: keep-alive`), which every SSE client ignores.
 */
export const SSE_DONE = "data: [DONE]\n\n";
export const SSE_KEEP_ALIVE = ": keep-alive\n\n";

export function sseData(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

export interface NativeTextEvent {
  text: string;
}
export interface NativeErrorEvent {
  error: string;
  message: string;
}
export type NativeStreamEvent = NativeTextEvent | NativeErrorEvent;

export function nativeTextEvent(text: string): string {
  return sseData({ text } satisfies NativeTextEvent);
}

export function nativeErrorEvent(error: string, message: string): string {
  return sseData({ error, message } satisfies NativeErrorEvent);
}

export interface SseEvent {
  event?: string;
  data: string;
}

/** Incremental SSE decoder: feed it chunks as they arrive, get complete events back. */
export class SseDecoder {
  private buffer = "";

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    for (;;) {
      const match = /\r?\n\r?\n/.exec(this.buffer);
      if (!match) break;
      const block = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = parseBlock(block);
      if (event) events.push(event);
    }
    return events;
  }
}

function parseBlock(block: string): SseEvent | undefined {
  const data: string[] = [];
  let event: string | undefined;
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
  }
  if (data.length === 0) return undefined;
  return event === undefined ? { data: data.join("\n") } : { event, data: data.join("\n") };
}
