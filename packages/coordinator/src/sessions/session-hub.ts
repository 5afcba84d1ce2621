import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { type CoordinatorMessage, type StageNodeMessage, NodeMessage, SESSION_PATH, errorBody, splitNodeFrame } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";
import { NODE_AUTH_REASONS, verifyNodeRequest } from "../http/node-auth.js";
import type { NodeSession } from "./node-session.js";

const PING_INTERVAL_MS = 10_000;
const RTT_ALPHA = 0.3;

/**
 * Accepts nodes' outbound WebSocket sessions. The upgrade request is signed like any node request; after that,
 * jobs go down and stream parts come up. A session that drops takes its node offline at once.
 */
export class SessionHub {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  private readonly sessions = new Set<WsNodeSession>();
  private readonly pinger: NodeJS.Timeout;

  constructor(private readonly ctx: CoordinatorContext) {
    this.pinger = setInterval(() => {
      for (const s of this.sessions) s.ping(ctx.clock.now());
    }, PING_INTERVAL_MS);
    this.pinger.unref();
  }

  /** Handles an HTTP upgrade; answers 401/404 itself when the request is not a valid node session. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? "").split("?")[0];
    if (path !== SESSION_PATH) return reject(socket, 404, errorBody("not_found", `no WebSocket endpoint at ${path}`));
    // The same per-address throttle as the HTTP routes: a session upgrade is one more place to guess signatures.
    const address = request.socket.remoteAddress ?? "unknown";
    const now = this.ctx.clock.now();
    const wait = this.ctx.authThrottle.retryAfterSeconds(address, now);
    if (wait > 0) {
      return reject(socket, 429, errorBody("rate_limited", `too many failed authentications from this address; retry in ${wait} s`), wait);
    }
    const result = verifyNodeRequest({ method: request.method ?? "GET", url: request.url ?? "", headers: request.headers, rawBody: "" }, this.ctx.nodeAuth);
    if (!result.ok) {
      if (result.reason !== "missing_header") this.ctx.authThrottle.recordFailure(address, now);
      return reject(socket, 401, errorBody("unauthorized", NODE_AUTH_REASONS[result.reason]));
    }
    const nodeId = result.nodeId;
    if (!this.ctx.registry.get(nodeId)) {
      return reject(socket, 401, errorBody("unauthorized", "unknown node: register first (`tessera register`)"));
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(nodeId, ws));
  }

  private accept(nodeId: string, ws: WebSocket): void {
    const session = new WsNodeSession(nodeId, ws);
    this.sessions.add(session);
    this.ctx.registry.attachSession(nodeId, session);
    void this.ctx.receiptSignatures.onSessionOpen(nodeId);
    this.ctx.logger.info({ node: nodeId.slice(0, 12) }, "node session open");
    ws.on("message", (data, isBinary) => {
      if (isBinary) return this.ctx.sharding.onBinary(nodeId, data as Buffer);
      let messages: unknown[];
      try {
        messages = splitNodeFrame(data.toString());
      } catch {
        this.ctx.logger.warn({ node: nodeId.slice(0, 12) }, "node sent a frame that is not JSON; ignored");
        return;
      }
      for (const message of messages) this.onMessage(nodeId, session, message);
    });
    ws.on("close", () => {
      this.sessions.delete(session);
      this.ctx.registry.detachSession(nodeId, session, "session closed");
      this.ctx.logger.info({ node: nodeId.slice(0, 12) }, "node session closed");
    });
    ws.on("error", (err) => this.ctx.logger.warn({ node: nodeId.slice(0, 12), err: err.message }, "node session error"));
    session.ping(this.ctx.clock.now());
    this.ctx.jobs.dispatch();
  }

  private onMessage(nodeId: string, session: WsNodeSession, payload: unknown): void {
    const parsed = NodeMessage.safeParse(payload);
    if (!parsed.success) {
      this.ctx.logger.warn({ node: nodeId.slice(0, 12), issue: parsed.error.issues[0]?.message }, "node sent an invalid message; ignored");
      return;
    }
    const message = parsed.data;
    this.ctx.registry.touch(nodeId, session);
    if (message.type === "pong") return session.pong(message.sent_at, this.ctx.clock.now());
    if (message.type.startsWith("stage.")) return this.ctx.sharding.onStageMessage(nodeId, message as StageNodeMessage);
    if (message.type === "check.scores" || message.type === "check.error") return this.ctx.checks.onMessage(nodeId, message);
    if (message.type === "receipt.signed" || message.type === "receipt.refused") return void this.ctx.receiptSignatures.onMessage(nodeId, message);
    if (message.type === "embed.result" || message.type === "embed.error") return this.ctx.embeddings.onMessage(nodeId, message);
    // A draining node (stopping, or its owner is back) gives up its layer spans too: their requests move to replicas
    // now, and the node offers its span file again when it takes work again.
    if (message.type === "draining") this.ctx.sharding.onNodeLost(nodeId);
    this.ctx.jobs.onNodeMessage(nodeId, message);
  }

  /**
   * Closes every session (1001) and resolves once each has closed, so their close handlers (the node goes offline
   * and its status is written) run before the caller closes the store. A node that does not answer the close
   * within `graceMs` is cut. Upgrades after this get 503.
   */
  async close(graceMs = 2_000): Promise<void> {
    clearInterval(this.pinger);
    const closed = [...this.sessions].map((s) => s.closeAndWait(1001, "coordinator shutting down", graceMs));
    this.wss.close();
    await Promise.all(closed);
  }
}

class WsNodeSession implements NodeSession {
  private rtt: number | undefined;

  constructor(
    readonly nodeId: string,
    private readonly ws: WebSocket,
  ) {}

  send(message: CoordinatorMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Activation frames of sharded models. */
  sendBinary(data: Uint8Array): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(data);
  }

  rttMs(): number | undefined {
    return this.rtt;
  }

  ping(now: number): void {
    this.send({ type: "ping", sent_at: now });
  }

  pong(sentAt: number, now: number): void {
    const sample = Math.max(0, now - sentAt);
    this.rtt = this.rtt === undefined ? sample : this.rtt + RTT_ALPHA * (sample - this.rtt);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  closeAndWait(code: number, reason: string, graceMs: number): Promise<void> {
    if (this.ws.readyState === this.ws.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const cut = setTimeout(() => this.ws.terminate(), graceMs);
      this.ws.once("close", () => {
        clearTimeout(cut);
        resolve();
      });
      this.ws.close(code, reason);
    });
  }
}

const STATUS_TEXT: Record<number, string> = { 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests" };

function reject(socket: Duplex, status: 401 | 404 | 429, body: object, retryAfterSeconds?: number): void {
  const text = JSON.stringify(body);
  const retry = retryAfterSeconds === undefined ? "" : `retry-after: ${retryAfterSeconds}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: application/json\r\n${retry}content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}
