import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import {
  type NodeCommand,
  NodeCommandCreate,
  NodeCommandReport,
  type NodeCommandView,
  NodeId,
  TesseraError,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import { signerOf } from "../http/request-guard.js";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import type { NodeMessenger } from "../workers/node-messenger.js";
import type { NodeCommandRecord, Store } from "../store/types.js";

/**
 * The node command queue (docs/api.md, "Node commands"). Queue and read are for the node's operator: a request
 * signed with the node's own key, or an operator token (`tessera node operator-token`) the node key signed. An API
 * key never is: it identifies a caller of the public API, not the owner of a machine. Reports come from the node.
 */

export interface NodeCommandDeps {
  clock: Clock;
  logger: Logger;
  registry: Pick<NodeRegistry, "get">;
  messenger: Pick<NodeMessenger, "send">;
  store: Pick<Store, "getNode" | "getNodeCommand" | "insertNodeCommand" | "listNodeCommands" | "nextQueuedCommands" | "updateNodeCommand">;
}

/** Unfinished commands one node may have; more is refused so a stuck node cannot grow the table without bound. */
export const MAX_OPEN_COMMANDS = 32;

interface LiveProgress {
  detail?: string;
  completed_bytes?: number;
  total_bytes?: number;
}

/** Byte counts while a command runs: shown by GET, not worth a store write per progress line. */
const liveProgress = new WeakMap<NodeCommandDeps, Map<string, LiveProgress>>();

function liveFor(deps: NodeCommandDeps): Map<string, LiveProgress> {
  let map = liveProgress.get(deps);
  if (!map) liveProgress.set(deps, (map = new Map()));
  return map;
}

/**
 * Returns normally when the caller is `nodeId`'s operator; throws forbidden otherwise. The request guard has already
 * checked the credential itself (a node signature or an operator token, `config.auth = "operator"`).
 */
function authorizeOperator(request: FastifyRequest, nodeId: string): void {
  if (request.signedBy !== undefined) {
    if (request.signedBy !== nodeId) throw new TesseraError("forbidden", "request is signed by another node's key; sign with this node's key");
    return;
  }
  if (request.operatorTokenFor !== undefined) {
    if (request.operatorTokenFor !== nodeId) throw new TesseraError("forbidden", "operator token is for another node");
    return;
  }
  throw new Error(`route ${request.url} has no operator credential: declare config.auth = "operator"`);
}

function parseNodeId(raw: string): string {
  const id = NodeId.safeParse(raw);
  if (!id.success) throw new TesseraError("bad_request", "node id must be a 64-character lowercase hex public key");
  return id.data;
}

async function requireNode(deps: NodeCommandDeps, nodeId: string): Promise<void> {
  if (deps.registry.get(nodeId) || (await deps.store.getNode(nodeId))) return;
  throw new TesseraError("not_found", `no node ${nodeId}: it must register first`);
}

function toView(deps: NodeCommandDeps, c: NodeCommandRecord): NodeCommandView {
  const view: NodeCommandView = {
    id: c.id,
    node_id: c.nodeId,
    type: c.type,
    model: c.model,
    status: c.status,
    progress: c.progress,
    error: c.error,
    issued_at: c.issuedAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
  const live = c.status === "running" ? liveFor(deps).get(c.id) : undefined;
  return live ? { ...view, ...live } : view;
}

function toWire(c: NodeCommandRecord): NodeCommand {
  return { id: c.id, type: c.type, model: c.model, issued_at: c.issuedAt.toISOString() };
}

/**
 * A node registered (its daemon started, or re-registered after losing the coordinator): every command the store
 * holds as `running` for it that the daemon does not list as its own was cut off by a restart and will never report,
 * so it is failed with `node_disconnected` rather than left running for ever. Queued commands stay queued.
 */
export async function failInterruptedCommands(deps: NodeCommandDeps, nodeId: string, stillRunning: readonly string[]): Promise<void> {
  const keep = new Set(stillRunning);
  for (const c of await deps.store.listNodeCommands(nodeId)) {
    if (c.status !== "running" || keep.has(c.id)) continue;
    liveFor(deps).delete(c.id);
    await deps.store.updateNodeCommand(c.id, {
      status: "failed",
      error: "node_disconnected: the node restarted while the command was running; queue it again",
      at: new Date(deps.clock.now()),
    });
    deps.logger.warn({ node: nodeId.slice(0, 12), command: c.id, type: c.type, model: c.model }, "node command cut off by a node restart; marked failed");
  }
}

/** Commands still `queued` for a node: the heartbeat answer repeats them until the node takes them. */
export async function queuedCommandsFor(deps: NodeCommandDeps, nodeId: string): Promise<NodeCommand[]> {
  return (await deps.store.nextQueuedCommands(nodeId)).map(toWire);
}

export function nodeCommandRoutes(app: FastifyInstance, deps: NodeCommandDeps): void {
  app.post<{ Params: { id: string } }>("/api/v1/nodes/:id/commands", { config: { auth: "operator" } }, async (request, reply): Promise<NodeCommandView> => {
    const nodeId = parseNodeId(request.params.id);
    authorizeOperator(request, nodeId);
    const body = NodeCommandCreate.parse(request.body);
    await requireNode(deps, nodeId);
    const open = (await deps.store.listNodeCommands(nodeId)).filter((c) => c.status === "queued" || c.status === "running");
    if (open.length >= MAX_OPEN_COMMANDS) {
      throw new TesseraError("rate_limited", `node has ${open.length} unfinished commands; wait for them to finish`, { retryAfterSeconds: 30 });
    }
    const record = await deps.store.insertNodeCommand({
      id: randomUUID(),
      nodeId,
      type: body.type,
      model: body.model,
      issuedAt: new Date(deps.clock.now()),
    });
    // Pushed at once when the node is connected; otherwise its next heartbeat answer carries it.
    // Now, wherever the node's session is; a node offline takes it with its next heartbeat.
    deps.messenger.send(nodeId, { type: "node.command", command: toWire(record) });
    deps.logger.info({ node: nodeId.slice(0, 12), command: record.id, type: record.type, model: record.model }, "node command queued");
    reply.code(201);
    return toView(deps, record);
  });

  app.get<{ Params: { id: string } }>("/api/v1/nodes/:id/commands", { config: { auth: "operator" } }, async (request): Promise<{ commands: NodeCommandView[] }> => {
    const nodeId = parseNodeId(request.params.id);
    authorizeOperator(request, nodeId);
    await requireNode(deps, nodeId);
    return { commands: (await deps.store.listNodeCommands(nodeId)).map((c) => toView(deps, c)) };
  });

  app.post<{ Params: { id: string; cid: string } }>("/api/v1/nodes/:id/commands/:cid/report", { config: { auth: "node" } }, async (request): Promise<NodeCommandView> => {
    const nodeId = parseNodeId(request.params.id);
    const signer = signerOf(request);
    if (signer !== nodeId) throw new TesseraError("forbidden", "only the node itself reports on its commands");
    const report = NodeCommandReport.parse(request.body);
    const command = await deps.store.getNodeCommand(request.params.cid);
    if (!command || command.nodeId !== nodeId) throw new TesseraError("not_found", `no command ${request.params.cid} for this node`);
    if (command.status === "succeeded" || command.status === "failed") {
      throw new TesseraError("conflict", `command ${command.id} already ${command.status}`);
    }
    const live = liveFor(deps);
    if (report.status === "running") {
      const figures: LiveProgress = {};
      if (report.detail !== undefined) figures.detail = report.detail;
      if (report.completed_bytes !== undefined) figures.completed_bytes = report.completed_bytes;
      if (report.total_bytes !== undefined) figures.total_bytes = report.total_bytes;
      live.set(command.id, figures);
    } else {
      live.delete(command.id);
    }
    const error = report.status === "failed" ? `${report.error ?? "internal_error"}: ${report.error_message ?? "failed"}` : undefined;
    const progress = report.status === "succeeded" ? 1 : report.progress;
    await deps.store.updateNodeCommand(command.id, {
      status: report.status,
      ...(progress !== undefined ? { progress } : {}),
      ...(error !== undefined ? { error } : {}),
      at: new Date(deps.clock.now()),
    });
    if (report.status !== "running") {
      deps.logger.info({ node: nodeId.slice(0, 12), command: command.id, status: report.status, error }, "node command finished");
    }
    return toView(deps, (await deps.store.getNodeCommand(command.id))!);
  });
}
