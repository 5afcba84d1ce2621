import type { FastifyInstance } from "fastify";
import { type DashboardOperatorView, TesseraError } from "@tessera/protocol";
import type { DashboardDeps } from "./deps.js";
import type { SessionGate } from "./session-gate.js";

/** `GET /dashboard/api/operator`: an operator session's nodes (every node counted under its operator) and earnings. */
export function operatorRoutes(app: FastifyInstance, deps: DashboardDeps, gate: SessionGate): void {
  app.get("/dashboard/api/operator", async (request, reply): Promise<DashboardOperatorView> => {
    const session = gate.require(request);
    if (!session.operator) throw new TesseraError("forbidden", "this page is for operators: sign in with a link from `tessera dashboard login`");
    const operatorId = session.operator.id;
    reply.header("cache-control", "no-store");
    return {
      operator_id: operatorId,
      nodes: deps.network.nodes(deps.clock.now()).filter((n) => n.operator === operatorId),
      earnings: await deps.earnings(operatorId),
    };
  });
}
