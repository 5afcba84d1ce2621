import type { FastifyInstance } from "fastify";
import { type HeartbeatAck, NodeHeartbeat, NodeId, NodeRegister, type NodeRegistered, type NodeStatusView, TesseraError } from "@tessera/protocol";
import type { CoordinatorConfig } from "../config.js";
import type { JobManager } from "../jobs/job-manager.js";
import type { CoordinatorMetrics } from "../metrics.js";
import type { Admission } from "../trust/admission.js";
import type { NodeStanding } from "../trust/node-standing.js";
import type { LiveNode, NodeRegistry } from "../registry.js";
import { signerOf } from "../http/request-guard.js";
import type { Store } from "../store/types.js";
import { type NodeCommandDeps, failInterruptedCommands, queuedCommandsFor } from "./node-commands.js";

const STORE_HEARTBEAT_EVERY_MS = 15_000;

export interface NodeRouteDeps extends NodeCommandDeps {
  config: Pick<CoordinatorConfig, "heartbeatIntervalS">;
  admission: Pick<Admission, "admit">;
  registry: NodeCommandDeps["registry"] & Pick<NodeRegistry, "register" | "heartbeat" | "markRetired">;
  store: NodeCommandDeps["store"] & Pick<Store, "upsertNode" | "recordHeartbeat">;
  standing: Pick<NodeStanding, "inherit">;
  metrics: Pick<CoordinatorMetrics, "heartbeats">;
  /** Queued jobs go to a node as soon as it is back. */
  jobs: Pick<JobManager, "dispatch">;
}

function heartbeatWorthStoring(record: LiveNode, hb: NodeHeartbeat, now: number): boolean {
  const state = `${hb.draining}|${hb.max_concurrency}|${hb.loaded_models.join(",")}|${hb.models?.map((m) => m.id).join(",") ?? ""}`;
  if (state === record.storedHeartbeatState && now - record.storedHeartbeatAt < STORE_HEARTBEAT_EVERY_MS) return false;
  record.storedHeartbeatState = state;
  record.storedHeartbeatAt = now;
  return true;
}

/** Node endpoints. Every write is signed by the node's key; the status read is public. */
export function nodeRoutes(app: FastifyInstance, deps: NodeRouteDeps): void {
  app.post("/api/v1/nodes/register", { config: { auth: "node", registration: true } }, async (request): Promise<NodeRegistered> => {
    const signer = signerOf(request);
    const reg = NodeRegister.parse(request.body);
    if (reg.public_key !== signer) throw new TesseraError("unauthorized", "public_key does not match the signing key");
    const admitted = await deps.admission.admit(reg);
    const at = new Date(deps.clock.now());
    await deps.store.upsertNode(
      {
        id: reg.public_key,
        version: reg.version,
        hardware: reg.hardware,
        models: reg.models,
        maxConcurrency: reg.max_concurrency,
        operatorId: admitted.operatorId,
        delegationExpiresAt: admitted.delegationExpiresAt,
      },
      at,
    );
    deps.registry.register(reg, admitted.operatorId);
    if (admitted.rotatedFrom) {
      deps.registry.markRetired(admitted.rotatedFrom, at.getTime());
      deps.standing.inherit(admitted.rotatedFrom, reg.public_key);
    }
    await deps.store.recordHeartbeat(reg.public_key, { gpus: [], loadedModels: [], activeJobs: 0, maxConcurrency: reg.max_concurrency, draining: false }, at);
    await failInterruptedCommands(deps, reg.public_key, reg.running_commands ?? []);
    deps.logger.info({ node: signer.slice(0, 12), operator: admitted.operatorId.slice(0, 12), models: reg.models.map((m) => m.id) }, "node registered");
    deps.jobs.dispatch();
    return { node_id: reg.public_key, operator: admitted.operatorId, status: "online", heartbeat_interval_s: deps.config.heartbeatIntervalS };
  });

  app.post("/api/v1/nodes/heartbeat", { config: { auth: "node" } }, async (request): Promise<HeartbeatAck> => {
    const nodeId = signerOf(request);
    const hb = NodeHeartbeat.parse(request.body);
    if (!deps.registry.heartbeat(nodeId, hb)) {
      throw new TesseraError("unauthorized", "unknown node: register first (`tessera register`)");
    }
    deps.metrics.heartbeats.inc();
    // The registry is the live truth; the store gets a heartbeat when something changed or every 15 s, which keeps
    // status queries and restarts right at a fraction of the writes (heartbeat traffic grows with the network).
    if (heartbeatWorthStoring(deps.registry.get(nodeId)!, hb, deps.clock.now())) {
      await deps.store.recordHeartbeat(
        nodeId,
        { gpus: hb.gpus, loadedModels: hb.loaded_models, models: hb.models, activeJobs: hb.active_jobs, maxConcurrency: hb.max_concurrency, draining: hb.draining },
        new Date(deps.clock.now()),
      );
    }
    if (!hb.draining) deps.jobs.dispatch();
    const ack: HeartbeatAck = { status: "online", server_time: new Date(deps.clock.now()).toISOString() };
    // The fallback delivery of node commands: repeated here until the node reports it has taken them.
    const commands = await queuedCommandsFor(deps, nodeId);
    if (commands.length > 0) ack.commands = commands;
    return ack;
  });

  app.get<{ Params: { id: string } }>("/api/v1/nodes/:id/status", async (request): Promise<NodeStatusView> => {
    const id = NodeId.safeParse(request.params.id);
    if (!id.success) throw new TesseraError("bad_request", "node id must be a 64-character lowercase hex public key");
    const live = deps.registry.get(id.data);
    if (live) return { status: live.online ? "online" : "offline", last_seen_at: new Date(live.lastSeenAt).toISOString() };
    const stored = await deps.store.getNode(id.data);
    if (!stored) throw new TesseraError("not_found", `no node ${id.data}`);
    const seen = stored.lastHeartbeatAt ?? stored.lastSeenAt;
    return seen ? { status: "offline", last_seen_at: seen.toISOString() } : { status: "offline" };
  });
}
