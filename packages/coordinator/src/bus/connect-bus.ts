import { randomBytes } from "node:crypto";
import type { Logger } from "../logger.js";
import type { Store } from "../store/types.js";
import type { Bus } from "./bus.js";
import { parseBusUrl } from "./bus-url.js";
import { connectNatsBus } from "./nats-bus.js";

/** Where the cluster's name on the bus is kept in the shared store (Store.settleSetting). */
const CLUSTER_SETTING = "bus_cluster";

/**
 * Joins this replica to its cluster's bus at `url`. The cluster's name is the database's: the first replica to start
 * stores a random one, and every replica of the same database reads that, so replicas find each other without being
 * told, and two networks sharing one NATS server never hear each other.
 */
export async function connectBus(url: string, replicaId: string, store: Store, logger: Logger): Promise<{ bus: Bus; cluster: string }> {
  const cluster = await store.settleSetting(CLUSTER_SETTING, `c${randomBytes(6).toString("hex")}`);
  const bus = await connectNatsBus(url, replicaId, logger);
  logger.info({ bus: parseBusUrl(url).shown, cluster }, "joined the replicas' bus");
  return { bus, cluster };
}
