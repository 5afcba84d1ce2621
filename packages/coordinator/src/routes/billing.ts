import type { FastifyInstance } from "fastify";
import type { BillingView, MoneyAmount } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { CoordinatorConfig } from "../config.js";
import { callerOf } from "../http/request-guard.js";
import { clientKeyIdOf } from "../payments/job-billing.js";
import { usdc } from "../payments/prices.js";
import { clientCredit, clientEscrow } from "../store/ledger-accounts.js";
import type { Store } from "../store/types.js";

const DAY_MS = 86_400_000;
const SPEND_DAYS = 30;

export interface BillingRouteDeps {
  clock: Clock;
  config: Pick<CoordinatorConfig, "ledger">;
  store: Pick<Store, "listTransactions" | "getBalances" | "listClientCharges">;
}

/** An amount both ways: integer micro-USDC for programs, a decimal string for people. */
function money(micro: number): MoneyAmount {
  return { micro, usdc: usdc(micro) };
}

/**
 * `GET /api/v1/billing`: the calling client's credit balance, what its running jobs hold in escrow, its top-ups, and
 * what it spent per UTC day over the last 30 days (from its receipts; forfeited ones were refunded).
 */
export function billingRoutes(app: FastifyInstance, deps: BillingRouteDeps): void {
  app.get("/api/v1/billing", { config: { auth: "client" } }, async (request): Promise<BillingView> => {
    const { ownerId } = callerOf(request);
    const now = deps.clock.now();
    const account = clientCredit(ownerId);
    const recent = await deps.store.listTransactions(account, { since: new Date(now - SPEND_DAYS * DAY_MS), limit: 1000 });
    const balances = await deps.store.getBalances([account, clientEscrow(ownerId)]);
    const held = balances.get(clientEscrow(ownerId)) ?? 0;
    const byDay = new Map<string, { amount: number; jobs: number }>();
    for (const charge of await deps.store.listClientCharges(clientKeyIdOf(ownerId), new Date(now - SPEND_DAYS * DAY_MS))) {
      const day = charge.completedAt.toISOString().slice(0, 10);
      const entry = byDay.get(day) ?? { amount: 0, jobs: 0 };
      entry.amount += charge.amount;
      entry.jobs++;
      byDay.set(day, entry);
    }
    return {
      currency: "USDC" as const,
      ledger: deps.config.ledger,
      balance: money(balances.get(account) ?? 0),
      held: money(held),
      top_ups: recent
        .filter((t) => t.kind === "topup")
        .map((t) => ({ at: t.createdAt.toISOString(), amount: money(t.entries.find((e) => e.account === account)?.amount ?? 0), source: t.memo })),
      spend_by_day: [...byDay].map(([day, v]) => ({ day, amount: money(v.amount), receipts: v.jobs })),
    };
  });
}
