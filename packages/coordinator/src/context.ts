import type { Clock } from "./clock.js";
import type { NodeAuthDeps } from "./http/node-auth.js";
import type { CoordinatorConfig } from "./config.js";
import type { JobManager } from "./jobs/job-manager.js";
import type { SpeedMetrics } from "./jobs/speed-metrics.js";
import type { Logger } from "./logger.js";
import type { CoordinatorMetrics } from "./metrics.js";
import type { RateLimiter } from "./rate-limiter.js";
import type { AuthThrottle } from "./auth-throttle.js";
import type { NodeRegistry } from "./registry.js";
import type { NodeMessenger } from "./workers/node-messenger.js";
import type { Store } from "./store/types.js";
import type { Admission } from "./trust/admission.js";
import type { SpotChecks } from "./trust/spot-checks.js";
import type { NodeStanding } from "./trust/node-standing.js";
import type { Signer } from "@tessera/protocol";
import type { PriceTable } from "./payments/prices.js";
import type { ReceiptSignatures } from "./payments/receipt-signatures.js";
import type { EmbeddingRequests } from "./embeddings/embedding-requests.js";
import type { JobBilling } from "./payments/job-billing.js";
import type { ShardingManager } from "./sharding/index.js";

/**
 * The coordinator's parts, wired once in `coordinator.ts`: what `app.ts` builds the HTTP routes from (each route
 * takes only the parts its own deps interface names) and what tests reach in through. Nothing below the edge takes it.
 */
export interface CoordinatorContext {
  config: CoordinatorConfig;
  clock: Clock;
  store: Store;
  registry: NodeRegistry;
  /** How messages reach a node's session, wherever it is held (workers/node-messenger.ts). */
  messenger: NodeMessenger;
  jobs: JobManager;
  speed: SpeedMetrics;
  /** Each node's reputation, tier, cooldown and quarantine (trust/node-standing.ts). */
  standing: NodeStanding;
  metrics: CoordinatorMetrics;
  nodeAuth: NodeAuthDeps;
  limiter: RateLimiter;
  /** Failed authentications per client address, shared by the HTTP routes and the node session upgrade. */
  authThrottle: AuthThrottle;
  logger: Logger;
  /** Spot checks of delivered answers by reference nodes. */
  checks: SpotChecks;
  /** Who may register, and under which operator. */
  admission: Admission;
  /** Asks each receipt's node to sign it, and stores the signatures that verify (payments/receipt-signatures.ts). */
  receiptSignatures: ReceiptSignatures;
  /** What each model costs and earns (payments/prices.ts). */
  prices: PriceTable;
  /** The platform key: countersigns every receipt (payments/platform-key.ts). */
  platform: Signer;
  /** `/v1/embeddings` requests in flight on nodes (embeddings/embedding-requests.ts). */
  embeddings: EmbeddingRequests;
  /** Escrow, charges and receipts (payments/job-billing.ts); undefined with `--ledger off`. Jobs reach it through `jobs`. */
  billing: JobBilling | undefined;
  /** This replica's id among coordinators sharing the database (replicas/design.md). */
  replicaId: string;
  /** Sharded models (sharding/): what the models list says of each (stages, layers, nodes). */
  sharding: Pick<ShardingManager, "summaries">;
}
