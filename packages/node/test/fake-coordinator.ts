import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import {
  NodeHeartbeat,
  NodeMessage,
  NodeRegister,
  NonceCache,
  SESSION_PATH,
  errorBody,
  verifyRequest,
  type AuthResult,
  splitNodeFrame,
} from "@tessera/protocol";

export interface RecordedRequest {
  path: string;
  auth: AuthResult;
  body: unknown;
}

/**
 * An in-process coordinator for daemon tests: the node endpoints and the session, each request checked with the
 * protocol's `verifyRequest` (nonces included) against the test's clock. Unknown nodes get 401, like the real one.
 */
export class FakeCoordinator {
  readonly registers: RecordedRequest[] = [];
  readonly heartbeats: RecordedRequest[] = [];
  readonly upgrades: RecordedRequest[] = [];
  /** Every message the node sent, over all sessions, validated with the protocol schema. */
  readonly messages: NodeMessage[] = [];
  readonly known = new Set<string>();
  sockets: WebSocket[] = [];
  /** When set, register answers with this status and error body. */
  registerError: { status: number; code: "bad_request" | "internal_error" | "forbidden" | "pending_approval" } | undefined;
  private readonly nonces = new NonceCache();
  private readonly wss = new WebSocketServer({ noServer: true });
  private server: Server;
  url = "";

  constructor(private readonly nowSeconds: () => number) {
    this.server = createServer((req, res) => void this.http(req, res));
    this.server.on("upgrade", (req, socket, head) => this.upgrade(req, socket, head));
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  get socket(): WebSocket | undefined {
    return this.sockets.at(-1);
  }

  send(message: unknown): void {
    this.socket!.send(JSON.stringify(message));
  }

  /** Parts received for one job, in order. */
  partsOf(jobId: string) {
    return this.messages.flatMap((m) => (m.type === "job.part" && m.job_id === jobId ? [m.part] : []));
  }

  async close(): Promise<void> {
    for (const s of this.wss.clients) s.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private verify(req: IncomingMessage, body: string): AuthResult {
    return verifyRequest({
      method: req.method ?? "",
      path: req.url ?? "",
      body,
      authHeader: req.headers["x-tessera-auth"] as string | undefined,
      keyHeader: req.headers["x-tessera-key"] as string | undefined,
      nowSeconds: this.nowSeconds(),
      nonces: this.nonces,
    });
  }

  private async http(req: IncomingMessage, res: import("node:http").ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const auth = this.verify(req, text);
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const record: RecordedRequest = { path: req.url ?? "", auth, body: JSON.parse(text || "null") };
    if (!auth.ok) return reply(401, errorBody("unauthorized", `bad signature: ${auth.reason}`));
    if (req.url === "/api/v1/nodes/register") {
      this.registers.push(record);
      if (this.registerError) return reply(this.registerError.status, errorBody(this.registerError.code, "refused by test"));
      const parsed = NodeRegister.safeParse(record.body);
      if (!parsed.success || parsed.data.public_key !== auth.publicKeyHex) {
        return reply(400, errorBody("bad_request", "invalid register body"));
      }
      this.known.add(auth.publicKeyHex);
      return reply(200, { node_id: auth.publicKeyHex, status: "online", heartbeat_interval_s: 30 });
    }
    if (req.url === "/api/v1/nodes/heartbeat") {
      if (!this.known.has(auth.publicKeyHex)) return reply(401, errorBody("unauthorized", "unknown node"));
      if (!NodeHeartbeat.safeParse(record.body).success) return reply(400, errorBody("bad_request", "invalid heartbeat"));
      this.heartbeats.push(record);
      return reply(200, { status: "online", server_time: new Date(this.nowSeconds() * 1000).toISOString() });
    }
    reply(404, errorBody("not_found", "no such route"));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const auth = this.verify(req, "");
    this.upgrades.push({ path: req.url ?? "", auth, body: null });
    const refuse = (message: string) => {
      const body = JSON.stringify(errorBody("unauthorized", message));
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
    };
    if (req.url !== SESSION_PATH) return refuse("wrong path");
    if (!auth.ok) return refuse(`bad signature: ${auth.reason}`);
    if (!this.known.has(auth.publicKeyHex)) return refuse("unknown node");
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.push(ws);
      ws.on("message", (data) => {
        for (const item of splitNodeFrame(data.toString())) {
          const parsed = NodeMessage.safeParse(item);
          if (!parsed.success) throw new Error(`node sent an invalid message: ${JSON.stringify(item)}`);
          this.messages.push(parsed.data);
        }
      });
    });
  }
}

/** Polls until `predicate` holds; fails the test with `what` after a while. */
export async function waitFor(what: string, predicate: () => boolean, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
