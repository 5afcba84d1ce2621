import type { FastifyInstance } from "fastify";
import { NodeId, type NodeView, TesseraError } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { NodeRegistry } from "../registry.js";
import type { Store } from "../store/types.js";
import type { NodeStanding } from "../trust/node-standing.js";

export interface NodeViewRouteDeps {
  clock: Clock;
  registry: Pick<NodeRegistry, "get">;
  store: Pick<Store, "getNode">;
  standing: Pick<NodeStanding, "view">;
}

/**
 * `GET /api/v1/nodes/:id` (public): a node's standing — tier, reputation and its factors, checks, quarantine and any
 * cooldown — so users can see whom they are routed to and operators what they risk (docs/trust.md).
 */
export function nodeViewRoutes(app: FastifyInstance, deps: NodeViewRouteDeps): void {
  app.get<{ Params: { id: string } }>("/api/v1/nodes/:id", async (request): Promise<NodeView> => {
    const id = NodeId.safeParse(request.params.id);
    if (!id.success) throw new TesseraError("bad_request", "node id must be a 64-character lowercase hex public key");
    const live = deps.registry.get(id.data);
    const stored = live ? undefined : await deps.store.getNode(id.data);
    if (!live && !stored) throw new TesseraError("not_found", `no node ${id.data}`);
    const now = deps.clock.now();
    const standing = deps.standing.view(id.data, now);
    return {
      node_id: id.data,
      status: live?.online ? "online" : "offline",
      operator: live?.operatorId ?? stored?.operatorId ?? standing.operatorId,
      tier: standing.tier,
      reputation: { score: standing.score, completion: standing.completion, speed: standing.speed, verification: standing.verification },
      checks: { passed: standing.checksPassed, failed: standing.checksFailed },
      quarantined: standing.quarantined,
      ...(live?.online && live.draining ? { drain_reason: live.drainReason ?? "unspecified" } : {}),
      ...(standing.cooldownUntil !== undefined ? { cooldown_until: new Date(standing.cooldownUntil).toISOString() } : {}),
    };
  });
}
