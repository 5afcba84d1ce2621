import type { FastifyInstance } from "fastify";
import { NodeId, type NodeView, TesseraError } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";

/**
 * `GET /api/v1/nodes/:id` (public): a node's standing — tier, reputation and its factors, checks, quarantine and any
 * cooldown — so users can see whom they are routed to and operators what they risk (docs/trust.md).
 */
export function nodeViewRoutes(app: FastifyInstance, ctx: CoordinatorContext): void {
  app.get<{ Params: { id: string } }>("/api/v1/nodes/:id", async (request): Promise<NodeView> => {
    const id = NodeId.safeParse(request.params.id);
    if (!id.success) throw new TesseraError("bad_request", "node id must be a 64-character lowercase hex public key");
    const live = ctx.registry.get(id.data);
    const stored = live ? undefined : await ctx.store.getNode(id.data);
    if (!live && !stored) throw new TesseraError("not_found", `no node ${id.data}`);
    const now = ctx.clock.now();
    const standing = ctx.standing.view(id.data, now);
    return {
      node_id: id.data,
      status: live?.online ? "online" : "offline",
      operator: live?.operatorId ?? stored?.operatorId ?? standing.operatorId,
      tier: standing.tier,
      reputation: { score: standing.score, completion: standing.completion, speed: standing.speed, verification: standing.verification },
      checks: { passed: standing.checksPassed, failed: standing.checksFailed },
      quarantined: standing.quarantined,
      ...(standing.cooldownUntil !== undefined ? { cooldown_until: new Date(standing.cooldownUntil).toISOString() } : {}),
    };
  });
}
