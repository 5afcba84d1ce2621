import type { IncomingMessage } from "node:http";
import { WebSocket, type RawData } from "ws";
import { SESSION_PATH, signRequest, type Signer } from "@tessera/protocol";
import { backoffDelayMs } from "./backoff.js";
import type { NodeLogger } from "./logger.js";
import { errorFromResponse, sessionUrl } from "./signed-http.js";
import type { CoordinatorList } from "./coordinator-list.js";
import { FrameBatcher } from "./frame-batcher.js";
import type { FrameSender } from "./job-runner.js";

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The `ws` client class, or anything constructed the same way (tests inject it; production uses `ws`). */
export type WebSocketCtor = typeof WebSocket;

export interface SessionClientOptions {
  /** Where to connect: the coordinator in use, and the others to move to when it cannot be reached. */
  coordinators: CoordinatorList;
  signer: Signer;
  WebSocket: WebSocketCtor;
  clock: Clock;
  random: () => number;
  logger: NodeLogger;
  /** Called for each text frame; `send` writes to the socket the frame came on. */
  onFrame(text: string, send: FrameSender): void;
  /** Called for each binary frame (sharded inference's activations); `send` writes binary frames back. */
  onBinary?(data: Buffer, send: (frame: Uint8Array) => void): void;
  onOpen(send: FrameSender): void;
  onClose(): void;
  /**
   * Called before reconnecting when the coordinator answered the upgrade with 401 (it does not know us), and after
   * moving to another coordinator of the list.
   */
  reregister(): Promise<void>;
}

const OPEN = 1;
const MAX_ERROR_BODY = 4096;

/**
 * One signed WebSocket session to the coordinator, kept up with exponential backoff and full jitter. The upgrade
 * request is signed like any GET with an empty body, over the exact path dialled. With several coordinators
 * (coordinator-list.ts), a try that cannot reach the one in use (no session opened) moves to the next before the
 * following try, which registers there first; a session that closed after opening is retried where it was once.
 */
export class SessionClient {
  private socket: WebSocket | undefined;
  private batcher: FrameBatcher | undefined;
  private attempt = 0;
  private timer: unknown;
  private stopped = false;
  private needsRegister = false;
  private closedWaiters: Array<() => void> = [];
  /** Sessions opened so far (1 after the first connect; more after reconnects). */
  opens = 0;

  constructor(private readonly options: SessionClientOptions) {}

  start(): void {
    this.connect();
  }

  get isOpen(): boolean {
    return this.socket?.readyState === OPEN;
  }

  /** Sends on the current session; false when none is open. */
  send(frame: string): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN || !this.batcher) return false;
    this.batcher.send(frame);
    return true;
  }

  /** Closes for good (no reconnect); resolves once the socket is closed or after `timeoutMs`. */
  close(code: number, reason: string, timeoutMs = 2000): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timeout = this.options.clock.setTimeout(() => {
        socket.terminate();
        resolve();
      }, timeoutMs);
      this.closedWaiters.push(() => {
        this.options.clock.clearTimeout(timeout);
        resolve();
      });
      if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
      else {
        this.batcher?.flush();
        socket.close(code, reason);
      }
    });
  }

  private connect(): void {
    if (this.stopped) return;
    const { coordinators, signer, logger } = this.options;
    const { url, signedPath } = sessionUrl(coordinators.current, SESSION_PATH);
    const headers = signRequest(signer, { method: "GET", path: signedPath, body: "" }, {
      nowSeconds: Math.floor(this.options.clock.now() / 1000),
    });
    const socket = new this.options.WebSocket(url, { headers, perMessageDeflate: false });
    this.socket = socket;
    const batcher = new FrameBatcher((frame) => {
      if (socket.readyState === OPEN) socket.send(frame);
    });
    this.batcher = batcher;
    const send: FrameSender = (frame) => {
      if (socket.readyState === OPEN) batcher.send(frame);
    };
    let opened = false;
    socket.on("open", () => {
      opened = true;
      this.attempt = 0;
      this.opens++;
      logger.info(`session open (${url})`);
      this.options.onOpen(send);
    });
    socket.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        // Queued text frames go first so text and binary frames keep their order.
        this.options.onBinary?.(data as Buffer, (frame) => {
          batcher.flush();
          if (socket.readyState === OPEN) socket.send(frame);
        });
        return;
      }
      this.options.onFrame(data.toString(), send);
    });
    socket.on("unexpected-response", (_req, res: IncomingMessage) => this.refused(socket, res));
    socket.on("error", (err: Error) => logger.debug({ err }, "session socket error"));
    socket.on("close", (code: number) => {
      if (this.socket === socket) this.socket = undefined;
      for (const wake of this.closedWaiters.splice(0)) wake();
      this.options.onClose();
      if (this.stopped) return;
      const delay = backoffDelayMs(this.attempt++, this.options.random);
      if (!opened && coordinators.several && !this.needsRegister) {
        const next = coordinators.advance();
        this.needsRegister = true;
        logger.warn(`session unavailable at ${url}; moving to ${next} in ${delay} ms`);
      } else logger.warn(`session ${opened ? `closed (${code})` : "unavailable"}; reconnecting in ${delay} ms`);
      this.timer = this.options.clock.setTimeout(() => {
        this.timer = undefined;
        void this.reconnect();
      }, delay);
    });
  }

  private async reconnect(): Promise<void> {
    if (this.stopped) return;
    if (this.needsRegister) {
      this.needsRegister = false;
      try {
        await this.options.reregister();
      } catch (err) {
        // Registration failed (coordinator still down?): try the whole thing again after the next backoff, at the
        // next coordinator when there are several.
        this.needsRegister = true;
        const delay = backoffDelayMs(this.attempt++, this.options.random);
        const { coordinators } = this.options;
        const from = coordinators.current;
        if (coordinators.several) this.options.logger.warn({ err }, `re-register at ${from} failed; moving to ${coordinators.advance()} in ${delay} ms`);
        else this.options.logger.warn({ err }, "re-register failed");
        this.timer = this.options.clock.setTimeout(() => void this.reconnect(), delay);
        return;
      }
    }
    this.connect();
  }

  /** The upgrade was answered with an HTTP status instead of 101: read the error body, then give up this try. */
  private refused(socket: WebSocket, res: IncomingMessage): void {
    const status = res.statusCode ?? 0;
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      if (body.length < MAX_ERROR_BODY) body += chunk;
    });
    const finish = () => {
      const err = errorFromResponse(status, body);
      if (status === 401) this.needsRegister = true;
      this.options.logger.warn(`session refused: HTTP ${status} [${err.code}] ${err.message}`);
      socket.terminate();
    };
    res.once("end", finish);
    res.once("error", finish);
  }
}
