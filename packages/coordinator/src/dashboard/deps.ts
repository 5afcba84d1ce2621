import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { AuthThrottle } from "../auth-throttle.js";
import type { Clock } from "../clock.js";
import type { CoordinatorContext } from "../context.js";
import type { EarningsView, JobView, PayoutRequestView } from "@tessera/protocol";
import { viewOfJobRecord, viewOfLiveJob } from "../jobs/job-view.js";
import type { Logger } from "../logger.js";
import type { PayoutSchedule } from "../payments/payout-schedule.js";
import type { RateLimiter } from "../rate-limiter.js";
import { requestPayoutFor } from "../routes/payouts.js";
import { earningsOf } from "../routes/payouts-earnings.js";
import { isPayoutChain } from "../settlement/chains.js";
import type { Store } from "../store/types.js";
import type { SharedNonceCheck } from "../http/node-auth.js";
import type { NetworkSource } from "./network-source.js";
import { networkSourceOf } from "./network-source.js";

/**
 * What the dashboard routes use, and nothing more. `dashboardDepsOf` is the one place that reads the coordinator's
 * context, so when routes take explicit dependencies this file is the only one that changes.
 */
export interface DashboardDeps {
  clock: Clock;
  logger: Logger;
  /** Open mode: the public API serves callers without a key, and anyone may make themselves a key here. */
  open: boolean;
  apiKeys: Pick<Store, "findApiKeyByHash" | "createApiKey" | "listApiKeys" | "revokeApiKey">;
  /** Failed sign-ins count with every other failed authentication from the same address. */
  throttle: AuthThrottle;
  /** Sign-ins and key creations per address per minute (the API's limiter, under keys of its own). */
  limiter: RateLimiter;
  network: NetworkSource;
  /** The built dashboard (index.html and assets/), or undefined when `@tessera/dashboard` is not built. */
  staticDir: string | undefined;
  /** The operator a node counts under (live, or as stored), or undefined for a node never seen here. */
  operatorOfNode(nodeId: string): Promise<string | undefined>;
  /** An operator's earnings, as `GET /api/v1/payouts/earnings` shows them. */
  earnings(operatorId: string): Promise<EarningsView>;
  /** Asks for a payout as `POST /api/v1/payouts/requests` does, with the same checks (`bad_request` when refused). */
  requestPayout(operatorId: string, chain: string | undefined): Promise<PayoutRequestView>;
  /** The owner's store views: operators and their status, payouts asked for and batches. */
  admin: Pick<
    Store,
    | "listOperators"
    | "getOperator"
    | "setOperatorStatus"
    | "listPayoutRequests"
    | "listPayoutBatches"
    | "listJoinTokens"
    | "createJoinToken"
    | "revokeJoinToken"
    | "getNode"
    | "requestQuarantineRelease"
  >;
  /** An operator's payout addresses (as `tessera payout`) and its nodes' lifetime jobs. */
  operators: Pick<Store, "listPayoutAddresses" | "setPayoutAddress" | "countJobsServed">;
  /** Chains this coordinator pays out on: an RPC URL, a vault and the payer key configured (as the payout routes decide). */
  settlementChains: string[];
  /**
   * An owner's newest jobs (`key:<id>` or, in open mode, `addr:<address>`), each as `GET /api/v1/jobs` shows it: the
   * live state while this coordinator holds the job, else the stored record.
   */
  jobsOf(ownerId: string, limit: number): Promise<JobView[]>;
  /** `always`: the session cookie is `Secure` whatever the hop to this process (`--secure-cookies`, behind a TLS proxy). */
  secureCookies: "auto" | "always";
  /** When payouts run on their own (`--payout-schedule`). */
  payoutSchedule: PayoutSchedule;
  admission: string;
  /** The coordinator's platform key (hex): a login link it signed signs the owner in. */
  platformKey: string;
  /**
   * The replicas' shared record of used one-time tokens (PostgreSQL: replicas/shared-nonces.ts), so a login link signs
   * in once in the whole cluster; undefined where this process is the whole cluster.
   */
  usedOnce: SharedNonceCheck | undefined;
  /** The rate limit a key made here gets (the coordinator's `--rate-limit`, as `tessera coordinator keys create`). */
  defaultRateLimitPerMinute: number;
}

/** Where `@tessera/dashboard`'s build lives: its package's dist/ (present once `npm install` or `npm run build` ran). */
export function builtDashboardDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("@tessera/dashboard/package.json")), "dist");
  } catch {
    return undefined;
  }
}

export function dashboardDepsOf(ctx: CoordinatorContext): DashboardDeps {
  return {
    clock: ctx.clock,
    logger: ctx.logger,
    open: ctx.config.open,
    apiKeys: ctx.store,
    throttle: ctx.authThrottle,
    limiter: ctx.limiter,
    network: networkSourceOf(ctx),
    staticDir: builtDashboardDir(),
    defaultRateLimitPerMinute: ctx.config.rateLimitPerMinute,
    operatorOfNode: async (nodeId) => ctx.registry.get(nodeId)?.operatorId ?? (await ctx.store.getNode(nodeId))?.operatorId,
    earnings: (operatorId) => earningsOf(ctx, operatorId),
    requestPayout: (operatorId, chain) => requestPayoutFor(ctx, operatorId, chain),
    admin: ctx.store,
    operators: ctx.store,
    settlementChains: Object.keys(ctx.config.chainRpc).filter((c) => isPayoutChain(c) && ctx.config.vaults[c] !== undefined && ctx.config.payerKeyFile !== undefined),
    payoutSchedule: ctx.config.payoutSchedule,
    secureCookies: ctx.config.secureCookies,
    jobsOf: async (ownerId, limit) =>
      (await ctx.store.listJobs(ownerId, { limit })).map((record) => {
        const live = ctx.jobs.get(record.id);
        return live ? viewOfLiveJob(live) : viewOfJobRecord(record);
      }),
    admission: ctx.config.admission,
    platformKey: ctx.platform.publicKeyHex,
    usedOnce: ctx.nodeAuth.shared,
  };
}
