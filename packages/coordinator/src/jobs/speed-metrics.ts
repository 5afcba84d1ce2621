import { METRICS_EWMA_ALPHA } from "../store/metric-queries.js";

/**
 * What the coordinator has measured of each node's speed per model: EWMAs of solo-equivalent decode rate and of
 * node-side time to first token, from real jobs. Nested model → node so routing looks a model up once per decision.
 */
export interface MeasuredSpeed {
  tokensPerSecond: number;
  ttftMs: number;
  jobs: number;
}

export class SpeedMetrics {
  private readonly byModel = new Map<string, Map<string, MeasuredSpeed>>();

  get(nodeId: string, model: string): MeasuredSpeed | undefined {
    return this.byModel.get(model)?.get(nodeId);
  }

  /** Every node's figures for one model. */
  forModel(model: string): ReadonlyMap<string, MeasuredSpeed> | undefined {
    return this.byModel.get(model);
  }

  /** Sets figures as they were stored (after a restart). */
  restore(nodeId: string, model: string, metrics: MeasuredSpeed): void {
    this.nodesOf(model).set(nodeId, metrics);
  }

  /** Folds one job's sample in; a sample without a decode rate (one token) leaves the rate as it was. */
  record(nodeId: string, model: string, sample: { tokensPerSecond: number; ttftMs: number }): void {
    const prev = this.get(nodeId, model);
    const next = prev
      ? {
          tokensPerSecond: sample.tokensPerSecond > 0 ? prev.tokensPerSecond + METRICS_EWMA_ALPHA * (sample.tokensPerSecond - prev.tokensPerSecond) : prev.tokensPerSecond,
          ttftMs: prev.ttftMs + METRICS_EWMA_ALPHA * (sample.ttftMs - prev.ttftMs),
          jobs: prev.jobs + 1,
        }
      : { ...sample, jobs: 1 };
    this.nodesOf(model).set(nodeId, next);
  }

  private nodesOf(model: string): Map<string, MeasuredSpeed> {
    let byNode = this.byModel.get(model);
    if (!byNode) this.byModel.set(model, (byNode = new Map()));
    return byNode;
  }
}
