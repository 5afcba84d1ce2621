import { Agent as HttpAgent, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { FetchLike } from "./signed-http.js";

/** Statuses whose response has no body (the `Response` constructor refuses one). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * How long an idle kept-alive connection is kept. A server that announces its own idle timeout (`Keep-Alive:
 * timeout=N`, as Node's servers do) is taken at its word less a second, up to ten minutes, as undici does. One that
 * announces nothing (uvicorn under vLLM and SGLang, Go's servers) gets 4 s, before the 5 s after which uvicorn and
 * llama-server close theirs: a request never leaves on a socket the server is closing. Kept to the shorter 4 s, a
 * backend that keeps connections for a minute saw every burst after a few seconds' lull open all its connections
 * again, on the path to each stream's first token.
 */
const IDLE_SOCKET_MS = 4_000;
const MAX_IDLE_SOCKET_MS = 600_000;
const KEEP_ALIVE_HINT_MARGIN_MS = 1_000;
/** The first TCP keep-alive probe after this much silence on a kept socket (Node's default). */
const TCP_KEEP_ALIVE_PROBE_MS = 1_000;

/**
 * The idle time to keep a connection for after a response whose `Keep-Alive` header is `header`: the server's
 * announced timeout less a margin (at most `MAX_IDLE_SOCKET_MS`), `IDLE_SOCKET_MS` when it announced none, and 0 (do
 * not reuse) when it announced one too short to reuse safely.
 */
export function keptAliveIdleMs(header: string | undefined): number {
  const announced = header === undefined ? undefined : /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(header)?.[1];
  if (announced === undefined) return IDLE_SOCKET_MS;
  return Math.max(0, Math.min(MAX_IDLE_SOCKET_MS, Number(announced) * 1000 - KEEP_ALIVE_HINT_MARGIN_MS));
}

/** Each kept-alive socket's idle time, from its latest response (set before the agent keeps the socket). */
const idleMsOf = new WeakMap<Duplex, number>();

/**
 * What Node's `keepSocketAlive` does, with the idle time `keptAliveIdleMs` chose for the socket: Node's agents only ever
 * shorten their idle timeout to a server's announced one; with this, theirs is lengthened too.
 */
function keepFor(socket: Duplex): boolean {
  const idleMs = idleMsOf.get(socket) ?? IDLE_SOCKET_MS;
  if (idleMs === 0) return false;
  const tcp = socket as Socket;
  tcp.setKeepAlive(true, TCP_KEEP_ALIVE_PROBE_MS);
  tcp.unref();
  if (tcp.timeout !== idleMs) tcp.setTimeout(idleMs);
  return true;
}

/** `agent`, keeping its idle sockets for as long as `keepFor` says. */
function keepingAsAnnounced<A extends HttpAgent>(agent: A): A {
  agent.keepSocketAlive = keepFor;
  return agent;
}

const agents = {
  "http:": keepingAsAnnounced(new HttpAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS })),
  "https:": keepingAsAnnounced(new HttpsAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS })),
} as const;

/**
 * The daemon's HTTP client (its backend and its coordinator): `fetch`'s shape on `node:http`, with keep-alive.
 * Undici's `fetch` spends about half a millisecond of a small machine's CPU before a request leaves, and reads a
 * streamed body through a chain of web streams; a job's request to its backend is on the path to the first token,
 * and every token comes back through the body. Here the body is a web stream fed straight from the socket's chunks,
 * paused while its reader is behind. What it keeps of `fetch`:
 * - an abort (the signal's reason, a `TimeoutError` for `AbortSignal.timeout`) rejects the call, or errors a body
 *   being read, and closes the connection;
 * - a failure to connect rejects with `TypeError("fetch failed")` whose `cause` carries the socket's error code;
 * - a body cut short errors its reader; a reader that cancels closes the connection.
 * A request whose kept-alive socket the server had closed (a reset before any answer) is sent once more on a new
 * connection, as Node's documentation advises. It does not follow redirects (a 3xx is answered as is) or ask for
 * compressed bodies. Bodies are strings or bytes.
 */
export const nodeHttpFetch: FetchLike = (input, init) =>
  new Promise<Response>((resolve, reject) => {
    const url = new URL(input);
    const signal = init.signal ?? undefined;
    if (signal?.aborted) return reject(signal.reason);
    const protocol = url.protocol;
    if (protocol !== "http:" && protocol !== "https:") return reject(new TypeError(`fetch failed: unsupported protocol ${protocol}`));
    const send = protocol === "https:" ? httpsRequest : httpRequest;
    const body = requestBody(init.body);
    const headers = headerRecord(init.headers);
    if (body !== undefined) headers["content-length"] = body.byteLength;
    const method = init.method ?? "GET";

    let req: ClientRequest;
    let abortBody: ((reason: unknown) => void) | undefined;
    let settled = false;
    const settle = () => {
      settled = true;
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      const reason: unknown = signal!.reason;
      abortBody?.(reason);
      req.destroy();
      if (settled) return;
      settle();
      reject(reason);
    };
    const responseOf = (res: IncomingMessage): Response => {
      const status = res.statusCode ?? 0;
      const answer = { status, statusText: res.statusMessage, headers: headersOf(res) };
      if (NULL_BODY_STATUSES.has(status) || method === "HEAD") {
        res.resume();
        settle();
        return new Response(null, answer);
      }
      settled = true; // the signal stays on until the body is done
      const reply = responseBody(res, () => signal?.removeEventListener("abort", onAbort));
      abortBody = reply.abort;
      return new Response(reply.stream, answer);
    };
    const attempt = (retry: boolean) => {
      req = send(url, { method, headers, agent: agents[protocol] }, (res) => {
        const announced = res.headers["keep-alive"];
        idleMsOf.set(res.socket, keptAliveIdleMs(typeof announced === "string" ? announced : undefined));
        try {
          resolve(responseOf(res));
        } catch (err) {
          // A status or status text `Response` refuses: no answer fetch would have given either.
          res.destroy();
          settle();
          reject(new TypeError("fetch failed", { cause: err }));
        }
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (settled) return;
        if (retry && req.reusedSocket && err.code === "ECONNRESET") return attempt(false);
        settle();
        reject(new TypeError("fetch failed", { cause: err }));
      });
      req.end(body);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    attempt(true);
  });

/**
 * The response's body as a web stream fed from the socket's chunks, pausing the socket while the reader is behind.
 * `done` runs once the body has ended, failed or been cancelled; `abort` errors it with the signal's reason.
 */
function responseBody(res: IncomingMessage, done: () => void): { stream: ReadableStream<Uint8Array>; abort: (reason: unknown) => void } {
  let open = true;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const finish = (end: () => void) => {
    if (!open) return;
    open = false;
    done();
    end();
  };
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
      res.on("data", (chunk: Buffer) => {
        if (!open) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) res.pause();
      });
      res.once("end", () => finish(() => controller.close()));
      // Cut short: the server or the connection went away before the body ended.
      res.once("close", () =>
        finish(() => controller.error(new TypeError("terminated", { cause: res.errored ?? new Error("the response ended before its body") }))),
      );
    },
    pull: () => void res.resume(),
    cancel: () => finish(() => res.destroy()),
  });
  return { stream, abort: (reason) => finish(() => controller.error(reason)) };
}

/** The response's headers; a header `Headers` refuses (a name or value no browser would accept) is left out. */
function headersOf(res: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    try {
      headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
    } catch {
      // not a header fetch would pass on either
    }
  }
  return headers;
}

function requestBody(body: RequestInit["body"]): Uint8Array | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof Uint8Array) return body;
  throw new TypeError("nodeHttpFetch sends string or byte bodies only");
}

function headerRecord(headers: RequestInit["headers"]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  if (headers === undefined) return out;
  if (headers instanceof Headers || Array.isArray(headers)) {
    for (const [name, value] of new Headers(headers)) out[name] = value;
    return out;
  }
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = typeof value === "string" ? value : [...value];
  return out;
}
