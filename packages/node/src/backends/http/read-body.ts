import { SseDecoder } from "@tessera/protocol";

/**
 * Incremental readers over a fetch response body. Both stop when the body ends; a body cut mid-way (backend crash,
 * reset) surfaces as the reader's throw, which adapters turn into an error part.
 */

async function* textChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield decoder.decode(value, { stream: true });
    }
    finished = true;
    const tail = decoder.decode();
    if (tail) yield tail;
  } finally {
    // A consumer that stops early must not leave the connection open with an unread body.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** NDJSON (Ollama): one parsed JSON value per non-empty line. */
export async function* readJsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  let buffer = "";
  for await (const chunk of textChunks(body)) {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) !== -1) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
  }
  const rest = buffer.trim();
  if (rest) yield JSON.parse(rest);
}

/** Server-sent events (OpenAI-compatible servers): the `data` field of each event, `[DONE]` included. */
export async function* readSseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new SseDecoder();
  for await (const chunk of textChunks(body)) {
    for (const event of decoder.push(chunk)) yield event.data;
  }
}
