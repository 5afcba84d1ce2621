import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { DEFAULT_BEHAVIOUR, type FakeBehaviour } from "./fake-behaviour.js";

/** One request as the fake received it, for tests that assert what an adapter sent on the wire. */
export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, body: unknown, url: URL) => void | Promise<void>;

/**
 * A real HTTP server on a free 127.0.0.1 port, shared by every fake backend. It knows nothing of any wire format;
 * the fakes register routes. It can go down (listener closed, open connections cut: the adapter sees
 * ECONNREFUSED / a reset, as with a crashed backend) and come back on the same port.
 */
export class FakeHttpServer {
  readonly requests: RecordedRequest[] = [];
  behaviour: FakeBehaviour = { ...DEFAULT_BEHAVIOUR };
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;
  private up = false;

  constructor(private readonly route: (method: string, path: string) => RouteHandler | undefined) {
    this.server = createServer({ keepAlive: true, noDelay: true }, (req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get isUp(): boolean {
    return this.up;
  }

  setBehaviour(patch: Partial<FakeBehaviour>): void {
    this.behaviour = { ...this.behaviour, ...patch };
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.up = true;
  }

  /** The backend crashes: new connections are refused and open streams are cut mid-way. */
  async goDown(): Promise<void> {
    if (!this.up) return;
    this.up = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** The backend restarts on the same port. */
  async comeBack(): Promise<void> {
    if (this.up) return;
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.goDown();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const raw = await readBody(req);
    let body: unknown = undefined;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    this.requests.push({ method: req.method ?? "GET", path: url.pathname, body });
    if (this.behaviour.responseDelayMs > 0) await sleep(this.behaviour.responseDelayMs);
    const handler = this.route(req.method ?? "GET", url.pathname);
    if (!handler) {
      sendJson(res, 404, { detail: "Not Found" });
      return;
    }
    try {
      await handler(req, res, body, url);
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.destroy();
    }
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface TokenPump {
  /** Number of tokens to emit. */
  count: number;
  /** Write token `i` (already formatted for the wire). */
  emit(i: number): void;
  /** The fake fails after `failAfterTokens`: write the backend's error shape and end. */
  fail(emitted: number): void;
  /** All tokens emitted: write the closing frames and end. */
  finish(): void;
}

/**
 * Emits tokens at `behaviour.tokensPerSecond` on one response, scheduled against absolute due times (token i is
 * due at start + i/rate), so timer lateness never lowers the rate; tokens that fell due together go out in one
 * tick. Stops quietly when the client goes away. Cheap enough for many concurrent streams.
 */
export function pumpTokens(res: ServerResponse, behaviour: FakeBehaviour, pump: TokenPump): void {
  const rate = behaviour.tokensPerSecond;
  const start = performance.now();
  let i = 0;
  let closed = false;
  let held = false;
  res.on("close", () => {
    closed = true;
  });
  /** Drops the connection or fails the stream when the behaviour says so at token `i`; true when it did. */
  const interrupted = (): boolean => {
    if (behaviour.dropAfterTokens !== undefined && i >= behaviour.dropAfterTokens) {
      res.socket?.destroy();
      return true;
    }
    if (behaviour.failAfterTokens !== undefined && i >= behaviour.failAfterTokens) {
      pump.fail(i);
      return true;
    }
    return false;
  };
  const step = (): void => {
    if (closed) return;
    const due = rate > 0 ? Math.min(pump.count, Math.floor(((performance.now() - start) * rate) / 1000) + 1) : pump.count;
    while (i < due) {
      if (behaviour.hold && !held && i === behaviour.hold.afterTokens) {
        held = true;
        void behaviour.hold.until.then(step);
        return;
      }
      if (interrupted()) return;
      pump.emit(i);
      i++;
    }
    if (i >= pump.count) {
      if (!interrupted()) pump.finish();
      return;
    }
    const nextDue = start + (i * 1000) / rate;
    setTimeout(step, Math.max(0, nextDue - performance.now()));
  };
  step();
}
