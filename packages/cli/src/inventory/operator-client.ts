import {
  type NodeCommandType,
  type NodeCommandView,
  type NodeStatusView,
  type Signer,
  TesseraError,
  nodeCommandsPath,
  signRequest,
} from "@tessera/protocol";
import { coordinatorAnswer } from "../coordinator-answer.js";

/**
 * The node's operator talking to the coordinator about this node: signed with the node key (the CLI runs where the
 * key is). Every call has a timeout; an unreachable coordinator is `node_disconnected`.
 */
export interface OperatorClientDeps {
  baseUrl: string;
  signer: Signer;
  fetch: typeof fetch;
  nowMs: () => number;
  timeoutMs?: number;
}

export class OperatorClient {
  constructor(private readonly deps: OperatorClientDeps) {}

  get nodeId(): string {
    return this.deps.signer.publicKeyHex;
  }

  /** Undefined when the coordinator has never seen this node. */
  async nodeStatus(): Promise<NodeStatusView | undefined> {
    try {
      return await this.request<NodeStatusView>("GET", `/api/v1/nodes/${this.nodeId}/status`, undefined, false);
    } catch (err) {
      if (err instanceof TesseraError && err.code === "not_found") return undefined;
      throw err;
    }
  }

  queueCommand(type: NodeCommandType, model: string): Promise<NodeCommandView> {
    return this.request<NodeCommandView>("POST", nodeCommandsPath(this.nodeId), { type, model });
  }

  async listCommands(): Promise<NodeCommandView[]> {
    return (await this.request<{ commands: NodeCommandView[] }>("GET", nodeCommandsPath(this.nodeId))).commands;
  }

  private async request<T>(method: "GET" | "POST", path: string, body?: unknown, signed = true): Promise<T> {
    const base = new URL(this.deps.baseUrl);
    const fullPath = `${base.pathname.replace(/\/+$/, "")}${path}`;
    const text = body === undefined ? "" : JSON.stringify(body);
    const headers: Record<string, string> = body === undefined ? {} : { "content-type": "application/json" };
    if (signed) Object.assign(headers, signRequest(this.deps.signer, { method, path: fullPath, body: text }, { nowSeconds: Math.floor(this.deps.nowMs() / 1000) }));
    let res: Response;
    try {
      res = await this.deps.fetch(`${base.origin}${fullPath}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: text }),
        signal: AbortSignal.timeout(this.deps.timeoutMs ?? 5000),
      });
    } catch (err) {
      const reason = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw new TesseraError("node_disconnected", `coordinator ${this.deps.baseUrl} unreachable: ${reason}`);
    }
    return coordinatorAnswer<T>(res.status, await res.text());
  }
}
