import type { FastifyInstance } from "fastify";
import { type DashboardAdminView, DashboardOperatorStatusChange, TesseraError } from "@tessera/protocol";
import type { DashboardDeps } from "./deps.js";
import type { SessionGate } from "./session-gate.js";

const RECENT_BATCHES = 20;

/**
 * The owner's page: operators (the admission queue is those `pending`), approve and ban — the same store change as
 * `tessera coordinator operators approve|ban`, which the coordinator's admission poll carries out (a banned
 * operator's nodes are disconnected) — and the settlement status: payouts asked for, recent batches.
 */
export function adminRoutes(app: FastifyInstance, deps: DashboardDeps, gate: SessionGate): void {
  const requireAdmin = (request: Parameters<SessionGate["require"]>[0]) => {
    const session = gate.require(request);
    if (session.kind !== "admin") throw new TesseraError("forbidden", "this is the owner's page: sign in with a link from `tessera dashboard login --owner` on the coordinator's machine");
    return session;
  };

  app.get("/dashboard/api/admin", async (request, reply): Promise<DashboardAdminView> => {
    requireAdmin(request);
    const [operators, requests, batches] = await Promise.all([deps.admin.listOperators(), deps.admin.listPayoutRequests(), deps.admin.listPayoutBatches({ limit: RECENT_BATCHES })]);
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
    };
  });

  app.post<{ Params: { id: string } }>("/dashboard/api/admin/operators/:id", async (request, reply) => {
    requireAdmin(request);
    const change = DashboardOperatorStatusChange.parse(request.body ?? {});
    const id = request.params.id;
    if (!/^[0-9a-f]{64}$/.test(id)) throw new TesseraError("bad_request", "operator id must be a 64-character lowercase hex public key");
    if (!(await deps.admin.getOperator(id))) throw new TesseraError("not_found", `no operator ${id}`);
    const reason = change.reason ?? (change.status === "active" ? "approved by the owner" : "banned by the owner");
    await deps.admin.setOperatorStatus(id, change.status, new Date(deps.clock.now()), reason);
    return reply.code(204).send();
  });
}
