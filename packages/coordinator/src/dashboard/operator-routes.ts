import type { FastifyInstance } from "fastify";
import {
  type DashboardOperatorView,
  type DashboardPayoutAddress,
  DashboardPayoutAddressSet,
  DashboardPayoutRequest,
  type PayoutRequestView,
  TesseraError,
} from "@tessera/protocol";
import { DEFAULT_PAYOUT_CHAIN, SOLANA_NOT_SUPPORTED, parseEvmAddress, parsePayoutChain } from "../settlement/chains.js";
import type { PayoutAddressRecord } from "../store/types.js";
import type { DashboardDeps } from "./deps.js";
import type { SessionGate } from "./session-gate.js";

function addressView(a: PayoutAddressRecord, index: number): DashboardPayoutAddress {
  return { chain: a.chain, address: a.address, default: index === 0, updated_at: a.updatedAt.toISOString() };
}

/**
 * An operator session's page: `GET /dashboard/api/operator` (its nodes, every node counted under it, with their
 * lifetime jobs; its earnings; its payout addresses) and `PUT /dashboard/api/operator/payout-addresses/:chain`, the
 * same change as `tessera payout set` (`PUT /api/v1/payouts/addresses/:chain`, which needs the operator key's request
 * signature; here the login link the operator key's node signed stands for it, as it does for the earnings), and
 * `POST /dashboard/api/operator/payout-requests`, `tessera payout request` (the same `requestPayoutFor` as
 * `POST /api/v1/payouts/requests`, so the same checks and errors).
 */
export function operatorRoutes(app: FastifyInstance, deps: DashboardDeps, gate: SessionGate): void {
  const requireOperator = (request: Parameters<SessionGate["require"]>[0]) => {
    const session = gate.require(request);
    if (!session.operator) throw new TesseraError("forbidden", "this page is for operators: sign in with a link from `tessera dashboard login`");
    return session.operator.id;
  };

  app.get("/dashboard/api/operator", async (request, reply): Promise<DashboardOperatorView> => {
    const operatorId = requireOperator(request);
    const nodes = deps.network.nodes(deps.clock.now()).filter((n) => n.operator === operatorId);
    const [served, earnings, addresses] = await Promise.all([
      deps.operators.countJobsServed(nodes.map((n) => n.node_id)),
      deps.earnings(operatorId),
      deps.operators.listPayoutAddresses(operatorId),
    ]);
    reply.header("cache-control", "no-store");
    return {
      operator_id: operatorId,
      nodes: nodes.map((n) => ({ ...n, jobs_served: served.get(n.node_id) ?? 0 })),
      earnings,
      payout_addresses: addresses.map(addressView),
      default_chain: DEFAULT_PAYOUT_CHAIN,
    };
  });

  app.put<{ Params: { chain: string } }>("/dashboard/api/operator/payout-addresses/:chain", async (request): Promise<DashboardPayoutAddress> => {
    const operatorId = requireOperator(request);
    const raw = request.params.chain.trim().toLowerCase();
    if (raw === "solana") throw new TesseraError("bad_request", SOLANA_NOT_SUPPORTED);
    const chain = parsePayoutChain(raw).name;
    const body = DashboardPayoutAddressSet.parse(request.body ?? {});
    const address = parseEvmAddress(body.address, "payout address");
    const record: PayoutAddressRecord = { operatorId, chain, address, updatedAt: new Date(deps.clock.now()) };
    await deps.operators.setPayoutAddress(record);
    deps.logger.info({ operator: operatorId.slice(0, 12), chain, address }, "payout address set from the dashboard");
    return addressView(record, 0);
  });

  app.post("/dashboard/api/operator/payout-requests", async (request, reply): Promise<PayoutRequestView> => {
    const operatorId = requireOperator(request);
    const body = DashboardPayoutRequest.parse(request.body ?? {});
    const view = await deps.requestPayout(operatorId, body.chain);
    reply.code(202);
    return view;
  });
}
