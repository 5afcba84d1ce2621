import { describeRanges, indicesToRanges, type LayerRange } from "../placement/index.js";

/** A loaded stage as path choice sees it: a whole span on one node. */
export interface LoadedStage extends LayerRange {
  stageId: number;
  nodeId: string;
  /** Measured per-layer compute (EWMA), ms. */
  msPerLayer: number;
}

export type StagePathResult =
  | { ok: true; stages: LoadedStage[]; costMs: number }
  | { ok: false; missingLayers: LayerRange[]; message: string };

/**
 * The cheapest chain of whole loaded spans covering `[0, layerCount)`: each stage costs `rtt/2 in + rtt/2 out +
 * (end − start) · msPerLayer` (coordinator relay), as `choosePath` costs a segment, but segments are whole spans
 * because a stage runs its whole loaded range. Forward DP over layer boundaries; ties prefer fewer stages, then the
 * smaller stage id. Pure.
 */
export function chooseStagePath(
  stages: readonly LoadedStage[],
  rttMs: (nodeId: string) => number,
  layerCount: number,
  exclude: ReadonlySet<string> = new Set(),
): StagePathResult {
  const usable = stages.filter((s) => !exclude.has(s.nodeId)).sort((a, b) => a.start - b.start || a.stageId - b.stageId);
  const best: Array<{ cost: number; hops: number; prev: number; stage: LoadedStage | undefined } | undefined> = new Array(layerCount + 1);
  best[0] = { cost: 0, hops: 0, prev: -1, stage: undefined };
  for (let l = 0; l < layerCount; l++) {
    const here = best[l];
    if (!here) continue;
    for (const s of usable) {
      if (s.start !== l || s.end > layerCount) continue;
      const cost = here.cost + rttMs(s.nodeId) + (s.end - s.start) * s.msPerLayer;
      const cur = best[s.end];
      if (!cur || cost < cur.cost - 1e-9 || (Math.abs(cost - cur.cost) <= 1e-9 && here.hops + 1 < cur.hops)) {
        best[s.end] = { cost, hops: here.hops + 1, prev: l, stage: s };
      }
    }
  }
  const end = best[layerCount];
  if (!end) {
    const covered = new Uint8Array(layerCount);
    for (const s of usable) for (let l = s.start; l < Math.min(s.end, layerCount); l++) covered[l] = 1;
    // Layers held only by spans that cannot chain from layer 0 are reported as the first gap a path cannot cross.
    let reach = 0;
    for (let l = 0; l <= layerCount; l++) if (best[l]) reach = l;
    const missing: number[] = [];
    for (let l = 0; l < layerCount; l++) if (!covered[l]) missing.push(l);
    const ranges = missing.length > 0 ? indicesToRanges(missing) : [{ start: reach, end: layerCount }];
    return { ok: false, missingLayers: ranges, message: `${describeRanges(ranges)} ${ranges.length === 1 && ranges[0]!.end - ranges[0]!.start === 1 ? "is" : "are"} held by no online stage` };
  }
  const path: LoadedStage[] = [];
  for (let l = layerCount; l > 0; ) {
    const b = best[l]!;
    path.unshift(b.stage!);
    l = b.prev;
  }
  return { ok: true, stages: path, costMs: end.cost };
}
