import type { FastifyInstance } from "fastify";
import { type DashboardAdminView, DashboardOperatorStatusChange, DashboardQuarantineReleaseRequest, TesseraError } from "@tessera/protocol";
import { nextPayoutAt } from "../payments/payout-schedule.js";
import type { DashboardDeps } from "./deps.js";
import { joinTokenRoutes, joinTokenView } from "./join-token-routes.js";
import type { RequireAdmin, SessionGate } from "./session-gate.js";

const HEX_KEY = /^[0-9a-f]{64}$/;

const RECENT_BATCHES = 20;

/**
 * The owner's page: operators (the admission queue is those `pending`), approve and ban — the same store change as
 * `tessera coordinator operators approve|ban`, which the coordinator's admission poll carries out (a banned
 * operator's nodes are disconnected) — and the settlement status: payouts asked for, recent batches.
 */
export function adminRoutes(app: FastifyInstance, deps: DashboardDeps, gate: SessionGate): void {
  const requireAdmin: RequireAdmin = (request) => {
    const session = gate.require(request);
    if (session.kind !== "admin") throw new TesseraError("forbidden", "this is the owner's page: sign in with a link from `tessera dashboard owner-login` on the coordinator's machine");
  };

  app.get("/dashboard/api/admin", async (request, reply): Promise<DashboardAdminView> => {
    requireAdmin(request);
    const [operators, requests, batches, tokens] = await Promise.all([
      deps.admin.listOperators(),
      deps.admin.listPayoutRequests(),
      deps.admin.listPayoutBatches({ limit: RECENT_BATCHES }),
      deps.admin.listJoinTokens(),
    ]);
    const now = deps.clock.now();
    const nextAt = nextPayoutAt(deps.payoutSchedule, now);
    reply.header("cache-control", "no-store");
    return {
      admission: deps.admission,
      operators: operators.map((o) => ({ id: o.id, status: o.status, admitted_via: o.admittedVia, nodes: o.nodes, since: o.statusChangedAt.toISOString(), reason: o.statusReason })),
      payout_requests: requests.map((r) => ({ operator_id: r.operatorId, requested_at: r.requestedAt.toISOString() })),
      payout_batches: batches.map((b) => ({
        id: b.id,
        chain: b.chain,
        status: b.status,
        total: b.total,
        operators: b.items.length,
        tx_hash: b.txHash,
        error: b.error,
        created_at: b.createdAt.toISOString(),
      })),
      settlement_chains: deps.settlementChains,
      payout_schedule: deps.payoutSchedule,
      next_payout_at: nextAt === undefined ? null : new Date(nextAt).toISOString(),
      join_tokens: tokens.map((t) => joinTokenView(t, now)),
      quarantined_nodes: deps.network
        .nodes(now)
        .filter((n) => n.quarantined)
        .map((n) => ({ node_id: n.node_id, operator: n.operator, status: n.status, checks: n.checks })),
    };
  });

  app.post<{ Params: { id: string } }>("/dashboard/api/admin/operators/:id", async (request, reply) => {
    requireAdmin(request);
    const change = DashboardOperatorStatusChange.parse(request.body ?? {});
    const id = request.params.id;
    if (!HEX_KEY.test(id)) throw new TesseraError("bad_request", "operator id must be a 64-character lowercase hex public key");
    if (!(await deps.admin.getOperator(id))) throw new TesseraError("not_found", `no operator ${id}`);
    const reason = change.reason ?? (change.status === "active" ? "approved by the owner" : "banned by the owner");
    await deps.admin.setOperatorStatus(id, change.status, new Date(deps.clock.now()), reason);
    return reply.code(204).send();
  });

  /**
   * Lifts a node's quarantine: the same request as `tessera coordinator nodes release`, which the coordinator's
   * release poll carries out within 5 s (the node routes again and its next checks decide afresh). 202: asked for.
   */
  app.post<{ Params: { id: string } }>("/dashboard/api/admin/nodes/:id/release", async (request, reply) => {
    requireAdmin(request);
    const body = DashboardQuarantineReleaseRequest.parse(request.body ?? {});
    const id = request.params.id;
    if (!HEX_KEY.test(id)) throw new TesseraError("bad_request", "node id must be a 64-character lowercase hex public key");
    if (!(await deps.admin.getNode(id))) throw new TesseraError("not_found", `no node ${id}`);
    await deps.admin.requestQuarantineRelease({ nodeId: id, requestedAt: new Date(deps.clock.now()), reason: body.reason ?? "released by the owner from the dashboard" });
    return reply.code(202).send();
  });

  joinTokenRoutes(app, deps, requireAdmin);
}
