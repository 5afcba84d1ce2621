import type { FastifyInstance } from "fastify";
import { type HeartbeatAck, NodeHeartbeat, NodeId, NodeRegister, type NodeRegistered, type NodeStatusView, TesseraError } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";
import type { LiveNode } from "../registry.js";
import { signerOf } from "../http/request-guard.js";
import { failInterruptedCommands, queuedCommandsFor } from "./node-commands.js";

const STORE_HEARTBEAT_EVERY_MS = 15_000;

function heartbeatWorthStoring(record: LiveNode, hb: NodeHeartbeat, now: number): boolean {
  const state = `${hb.draining}|${hb.max_concurrency}|${hb.loaded_models.join(",")}|${hb.models?.map((m) => m.id).join(",") ?? ""}`;
  if (state === record.storedHeartbeatState && now - record.storedHeartbeatAt < STORE_HEARTBEAT_EVERY_MS) return false;
  record.storedHeartbeatState = state;
  record.storedHeartbeatAt = now;
  return true;
}

/** Node endpoints. Every write is signed by the node's key; the status read is public. */
export function nodeRoutes(app: FastifyInstance, ctx: CoordinatorContext): void {
  app.post("/api/v1/nodes/register", { config: { auth: "node", registration: true } }, async (request): Promise<NodeRegistered> => {
    const signer = signerOf(request);
    const reg = NodeRegister.parse(request.body);
    if (reg.public_key !== signer) throw new TesseraError("unauthorized", "public_key does not match the signing key");
    const admitted = await ctx.admission.admit(reg);
    const at = new Date(ctx.clock.now());
    await ctx.store.upsertNode(
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
    ctx.registry.register(reg, admitted.operatorId);
    if (admitted.rotatedFrom) {
      ctx.registry.markRetired(admitted.rotatedFrom, at.getTime());
      ctx.standing.inherit(admitted.rotatedFrom, reg.public_key);
    }
    await ctx.store.recordHeartbeat(reg.public_key, { gpus: [], loadedModels: [], activeJobs: 0, maxConcurrency: reg.max_concurrency, draining: false }, at);
    await failInterruptedCommands(ctx, reg.public_key, reg.running_commands ?? []);
    ctx.logger.info({ node: signer.slice(0, 12), operator: admitted.operatorId.slice(0, 12), models: reg.models.map((m) => m.id) }, "node registered");
    ctx.jobs.dispatch();
    return { node_id: reg.public_key, operator: admitted.operatorId, status: "online", heartbeat_interval_s: ctx.config.heartbeatIntervalS };
  });

  app.post("/api/v1/nodes/heartbeat", { config: { auth: "node" } }, async (request): Promise<HeartbeatAck> => {
    const nodeId = signerOf(request);
    const hb = NodeHeartbeat.parse(request.body);
    if (!ctx.registry.heartbeat(nodeId, hb)) {
      throw new TesseraError("unauthorized", "unknown node: register first (`tessera register`)");
    }
    ctx.metrics.heartbeats.inc();
    // The registry is the live truth; the store gets a heartbeat when something changed or every 15 s, which keeps
    // status queries and restarts right at a fraction of the writes (heartbeat traffic grows with the network).
    if (heartbeatWorthStoring(ctx.registry.get(nodeId)!, hb, ctx.clock.now())) {
      await ctx.store.recordHeartbeat(
        nodeId,
        { gpus: hb.gpus, loadedModels: hb.loaded_models, models: hb.models, activeJobs: hb.active_jobs, maxConcurrency: hb.max_concurrency, draining: hb.draining },
        new Date(ctx.clock.now()),
      );
    }
    if (!hb.draining) ctx.jobs.dispatch();
    const ack: HeartbeatAck = { status: "online", server_time: new Date(ctx.clock.now()).toISOString() };
    // The fallback delivery of node commands: repeated here until the node reports it has taken them.
    const commands = await queuedCommandsFor(ctx, nodeId);
    if (commands.length > 0) ack.commands = commands;
    return ack;
  });

  app.get<{ Params: { id: string } }>("/api/v1/nodes/:id/status", async (request): Promise<NodeStatusView> => {
    const id = NodeId.safeParse(request.params.id);
    if (!id.success) throw new TesseraError("bad_request", "node id must be a 64-character lowercase hex public key");
    const live = ctx.registry.get(id.data);
    if (live) return { status: live.online ? "online" : "offline", last_seen_at: new Date(live.lastSeenAt).toISOString() };
    const stored = await ctx.store.getNode(id.data);
    if (!stored) throw new TesseraError("not_found", `no node ${id.data}`);
    const seen = stored.lastHeartbeatAt ?? stored.lastSeenAt;
    return seen ? { status: "offline", last_seen_at: seen.toISOString() } : { status: "offline" };
  });
}
