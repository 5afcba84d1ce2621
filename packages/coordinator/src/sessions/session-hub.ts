import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import {
  drainReasonOf,
  type CheckError,
  type CheckScores,
  type CoordinatorMessage,
  type EmbedError,
  type EmbedResult,
  type ReceiptRefused,
  type ReceiptSigned,
  type StageNodeMessage,
  NodeMessage,
  SESSION_PATH,
  errorBody,
  splitNodeFrame,
} from "@tessera/protocol";
import type { AuthThrottle } from "../auth-throttle.js";
import type { Clock } from "../clock.js";
import { type NodeAuthDeps, NODE_AUTH_REASONS, claimSharedNonce, verifyNodeRequest } from "../http/node-auth.js";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import type { JobSink } from "../workers/job-sink.js";
import type { NodeSession } from "../workers/node-session.js";
import { SessionWorker } from "./session-worker.js";

const PING_INTERVAL_MS = 10_000;
const RTT_ALPHA = 0.3;

/** What the hub needs: who may open a session, and where each kind of message a node sends goes. */
export interface SessionHubDeps {
  clock: Clock;
  logger: Logger;
  registry: NodeRegistry;
  nodeAuth: NodeAuthDeps;
  /** Failed authentications per client address, shared with the HTTP routes. */
  authThrottle: AuthThrottle;
  /** Job reports; `dispatch` hands queued jobs to a node that just arrived. */
  jobs: JobSink & { dispatch(): void };
  /** Sharded models: stage messages, activation frames, and nodes that drain. */
  stages: {
    onStageMessage(nodeId: string, message: StageNodeMessage): void;
    onBinary(nodeId: string, data: Uint8Array): void;
    onNodeLost(nodeId: string): void;
  };
  checks: { onMessage(nodeId: string, message: CheckScores | CheckError): void };
  receipts: { onSessionOpen(nodeId: string): Promise<unknown>; onMessage(nodeId: string, message: ReceiptSigned | ReceiptRefused): Promise<unknown> };
  embeddings: { onMessage(nodeId: string, message: EmbedResult | EmbedError): void };
}

/**
 * Accepts nodes' outbound WebSocket sessions. The upgrade request is signed like any node request; after that,
 * jobs go down and stream parts come up. Each session is its node's worker here (session-worker.ts); the hub turns
 * what the node sends into calls (`JobSink` for jobs), so no wire message travels further in-process. A session that
 * drops takes its node offline at once.
 */
export class SessionHub {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  private readonly sessions = new Set<WsNodeSession>();
  private readonly pinger: NodeJS.Timeout;

  constructor(private readonly deps: SessionHubDeps) {
    this.pinger = setInterval(() => {
      for (const s of this.sessions) s.ping(deps.clock.now());
    }, PING_INTERVAL_MS);
    this.pinger.unref();
  }

  /** Handles an HTTP upgrade; answers 401/404 itself when the request is not a valid node session. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? "").split("?")[0];
    if (path !== SESSION_PATH) return reject(socket, 404, errorBody("not_found", `no WebSocket endpoint at ${path}`));
    // The same per-address throttle as the HTTP routes: a session upgrade is one more place to guess signatures.
    const address = request.socket.remoteAddress ?? "unknown";
    const now = this.deps.clock.now();
    const wait = this.deps.authThrottle.retryAfterSeconds(address, now);
    if (wait > 0) {
      return reject(socket, 429, errorBody("rate_limited", `too many failed authentications from this address; retry in ${wait} s`), wait);
    }
    const result = verifyNodeRequest({ method: request.method ?? "GET", url: request.url ?? "", headers: request.headers, rawBody: "" }, this.deps.nodeAuth);
    if (!result.ok) {
      if (result.reason !== "missing_header") this.deps.authThrottle.recordFailure(address, now);
      return reject(socket, 401, errorBody("unauthorized", NODE_AUTH_REASONS[result.reason]));
    }
    if (this.deps.nodeAuth.shared === undefined) return this.upgrade(result.nodeId, result.timestamp, request, socket, head);
    // The replicas' shared replay check: a session upgrade captured on one replica must not open one on another.
    claimSharedNonce(result, this.deps.nodeAuth).then(
      (fresh) => {
        if (fresh) return this.upgrade(result.nodeId, result.timestamp, request, socket, head);
        this.deps.authThrottle.recordFailure(address, now);
        reject(socket, 401, errorBody("unauthorized", NODE_AUTH_REASONS.replayed_nonce));
      },
      (err: unknown) => {
        this.deps.logger.error({ err }, "shared nonce check failed");
        reject(socket, 500, errorBody("internal_error", "internal error"));
      },
    );
  }

  private upgrade(nodeId: string, signedAt: number, request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.deps.registry.get(nodeId)) {
      return reject(socket, 401, errorBody("unauthorized", "unknown node: register first (`tessera register`)"));
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(nodeId, signedAt, ws));
  }

  private accept(nodeId: string, signedAt: number, ws: WebSocket): void {
    const { registry, logger } = this.deps;
    const session = new WsNodeSession(nodeId, signedAt, ws);
    const worker = new SessionWorker(session);
    this.sessions.add(session);
    registry.attach(nodeId, worker, session);
    void this.deps.receipts.onSessionOpen(nodeId);
    logger.info({ node: nodeId.slice(0, 12) }, "node session open");
    ws.on("message", (data, isBinary) => {
      if (isBinary) return this.deps.stages.onBinary(nodeId, data as Buffer);
      let messages: unknown[];
      try {
        messages = splitNodeFrame(data.toString());
      } catch {
        logger.warn({ node: nodeId.slice(0, 12) }, "node sent a frame that is not JSON; ignored");
        return;
      }
      for (const message of messages) this.onMessage(nodeId, session, worker, message);
    });
    ws.on("close", () => {
      this.sessions.delete(session);
      registry.detach(nodeId, worker, "session closed");
      logger.info({ node: nodeId.slice(0, 12) }, "node session closed");
    });
    ws.on("error", (err) => logger.warn({ node: nodeId.slice(0, 12), err: err.message }, "node session error"));
    session.ping(this.deps.clock.now());
    this.deps.jobs.dispatch();
  }

  private onMessage(nodeId: string, session: WsNodeSession, worker: SessionWorker, payload: unknown): void {
    const { deps } = this;
    const parsed = NodeMessage.safeParse(payload);
    if (!parsed.success) {
      deps.logger.warn({ node: nodeId.slice(0, 12), issue: parsed.error.issues[0]?.message }, "node sent an invalid message; ignored");
      return;
    }
    const message = parsed.data;
    deps.registry.touch(nodeId, worker);
    switch (message.type) {
      case "pong":
        return session.pong(message.sent_at, deps.clock.now());
      case "job.accept":
        return deps.jobs.accepted(nodeId, message.job_id);
      case "job.reject":
        return deps.jobs.rejected(nodeId, message.job_id, message.reason);
      case "job.part":
        return deps.jobs.part(nodeId, message.job_id, message.part);
      case "draining":
        // A draining node (stopping, or its owner is back) gives up its layer spans too: their requests move to
        // replicas now, and the node offers its span file again when it takes work again.
        deps.stages.onNodeLost(nodeId);
        // The reason is the node's word: only a known one is kept, anything else is `unspecified`.
        return deps.registry.setDraining(nodeId, drainReasonOf(message.reason));
      case "check.scores":
      case "check.error":
        return deps.checks.onMessage(nodeId, message);
      case "receipt.signed":
      case "receipt.refused":
        return void deps.receipts.onMessage(nodeId, message);
      case "embed.result":
      case "embed.error":
        return deps.embeddings.onMessage(nodeId, message);
      case "goodbye":
        return;
      default:
        return deps.stages.onStageMessage(nodeId, message);
    }
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
    readonly openedAt: number,
    private readonly ws: WebSocket,
  ) {}

  send(message: CoordinatorMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

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

const STATUS_TEXT: Record<number, string> = { 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error" };

function reject(socket: Duplex, status: 401 | 404 | 429 | 500, body: object, retryAfterSeconds?: number): void {
  const text = JSON.stringify(body);
  const retry = retryAfterSeconds === undefined ? "" : `retry-after: ${retryAfterSeconds}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: application/json\r\n${retry}content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}
