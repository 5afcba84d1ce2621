import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import type { NodeMessenger } from "../workers/node-messenger.js";
import type { NodeStanding } from "./node-standing.js";

/**
 * What every kind of check (an answer's spot check, a sharded stage's replay) is decided and judged by: who may be a
 * reference, how often a node is drawn, how long a reference may take, and where the outcome is counted.
 */
export interface CheckPolicy<Skip extends string> {
  registry: NodeRegistry;
  /** How a reference is reached, wherever its session is (a reference must be reachable to be chosen). */
  messenger: Pick<NodeMessenger, "send" | "reachable">;
  standing: Pick<NodeStanding, "checkRate" | "recordCheck" | "isQuarantined" | "tier">;
  clock: Clock;
  logger: Logger;
  random: () => number;
  /** Keys (node or operator) the owner names as references, whatever their tier (`--reference-node`). */
  namedReferences: ReadonlySet<string>;
  /** Overrides every tier's check rate (`--check-rate`); undefined: the tier's rate. */
  rateOverride: number | undefined;
  timeoutMs: number;
  metrics?: CheckMetrics<Skip>;
}

export interface CheckMetrics<Skip extends string> {
  checked(result: "passed" | "failed" | "abandoned"): void;
  /** A node was drawn for a check that did not run, and why. */
  skipped(reason: Skip): void;
}
