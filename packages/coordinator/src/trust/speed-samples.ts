import type { LiveNode } from "../registry.js";
import type { SpeedMetrics } from "../jobs/speed-metrics.js";
import { type SpeedSample, UNSPECIFIED_CLASS } from "./speed-factor.js";

/** The measured (node, model) speeds of every known node, with the hardware class each registered. */
export function* speedSamplesOf(nodes: Iterable<LiveNode>, speed: Pick<SpeedMetrics, "get">): Generator<SpeedSample> {
  for (const node of nodes) {
    const hardwareClass = node.hardware.tier ?? UNSPECIFIED_CLASS;
    for (const model of node.models) {
      const m = speed.get(node.id, model.id);
      if (m) yield { nodeId: node.id, model: model.id, hardwareClass, tokensPerSecond: m.tokensPerSecond, jobs: m.jobs };
    }
  }
}
