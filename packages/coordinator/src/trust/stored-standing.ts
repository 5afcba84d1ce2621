import type { Logger } from "../logger.js";
import type { Store } from "../store/types.js";
import { NodeStanding, type StandingView } from "./node-standing.js";
import { type SpeedSample, UNSPECIFIED_CLASS } from "./speed-factor.js";

type StandingSource = Pick<Store, "listNodes" | "listNodeStandings" | "listOperatorStandings" | "listNodeModelMetrics">;

/**
 * Every stored node's standing as `GET /api/v1/nodes/:id` would show it, read from the store alone: for tools that
 * run against the coordinator's database without a coordinator (`tessera coordinator nodes list`). Read-only: the
 * standing it builds writes nothing.
 */
export async function storedStandings(store: StandingSource, now: number, logger: Logger): Promise<Map<string, StandingView>> {
  const [nodes, standings, operators, metrics] = await Promise.all([
    store.listNodes(),
    store.listNodeStandings(),
    store.listOperatorStandings(),
    store.listNodeModelMetrics(),
  ]);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const samples: SpeedSample[] = [];
  for (const m of metrics) {
    const node = byId.get(m.nodeId);
    if (node) samples.push({ nodeId: m.nodeId, model: m.model, hardwareClass: node.hardware.tier ?? UNSPECIFIED_CLASS, tokensPerSecond: m.tokensPerSecond, jobs: m.samples });
  }
  const standing = new NodeStanding({
    clock: { now: () => now },
    store: {
      saveNodeStanding: () => Promise.resolve(),
      addOperatorCompletedJobs: () => Promise.resolve(0),
    },
    logger,
    operatorOf: (nodeId) => byId.get(nodeId)?.operatorId ?? nodeId,
    speedSamples: () => samples,
  });
  standing.restore(standings, operators);
  return new Map(nodes.map((n) => [n.id, standing.view(n.id, now)]));
}
