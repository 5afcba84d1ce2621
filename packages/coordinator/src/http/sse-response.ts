import type { FastifyReply } from "fastify";
import { SSE_KEEP_ALIVE } from "@tessera/protocol";

export interface SseResponse {
  write(chunk: string): void;
  end(): void;
  readonly closed: boolean;
  /** Called once if the client goes away before `end()`. */
  onClientGone(listener: () => void): void;
}

const KEEP_ALIVE_MS = 5_000;

/**
 * Takes over the reply and answers with an event stream. Keep-alive comments flow while nothing else does, so
 * proxies and clients don't time out a job that is waiting for a node.
 */
export function openSse(reply: FastifyReply, headers: Record<string, string> = {}): SseResponse {
  reply.hijack();
  const raw = reply.raw;
  // The head leaves with whatever the caller writes in this turn (the first chunk, usually): one syscall, and one
  // wake-up of the client instead of two.
  let corked = true;
  const uncork = () => {
    corked = false;
    raw.uncork();
  };
  raw.cork();
  process.nextTick(uncork);
  const extra = reply.getHeaders();
  // No `connection` header here: Node writes `Connection: keep-alive` with `Keep-Alive: timeout=…` (the server's idle
  // timeout) itself, and only when it sets both. A stream that named the connection itself went out without the
  // timeout, and clients that read it (undici, so Node's fetch and the openai package) kept the connection idle for
  // their own default of 4 s, not the server's 72: a client streaming every few seconds reconnected each time.
  raw.writeHead(200, {
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, String(v)])),
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
    ...headers,
  });
  raw.flushHeaders();
  raw.socket?.setNoDelay(true);
  let closed = false;
  let lastWrite = Date.now();
  const listeners: Array<() => void> = [];
  const keepAlive = setInterval(() => {
    if (Date.now() - lastWrite >= KEEP_ALIVE_MS) write(SSE_KEEP_ALIVE);
  }, KEEP_ALIVE_MS);
  keepAlive.unref();
  raw.on("close", () => {
    clearInterval(keepAlive);
    if (closed) return;
    closed = true;
    for (const l of listeners) l();
  });
  // Writes made in one turn of the event loop (several tokens from one coalesced node frame) leave in one syscall.
  function write(chunk: string): void {
    if (closed) return;
    lastWrite = Date.now();
    if (!corked) {
      corked = true;
      raw.cork();
      process.nextTick(uncork);
    }
    raw.write(chunk);
  }
  return {
    write,
    end() {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      raw.end();
    },
    get closed() {
      return closed;
    },
    onClientGone(listener) {
      listeners.push(listener);
    },
  };
}
