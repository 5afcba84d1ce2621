import { TesseraError } from "@tessera/protocol";
import { describeRanges, indicesToRanges } from "./layer-ranges.js";
import type { ChoosePathResult, LayerMapSpan, PathCost, PathSegment } from "./types.js";

/** RTT assumed for a node never measured (the scheduler uses the same prior). */
export const DEFAULT_PATH_RTT_MS = 300;
/** Per-layer time assumed when no node in the map has been measured. */
export const DEFAULT_MS_PER_LAYER = 10;

export interface ChoosePathOptions {
  /** Nodes that must not be used (dead, or failed this request). */
  exclude?: ReadonlySet<string>;
}

/**
 * The cheapest chain of segments covering layers `[0, layerCount)`: each segment runs `[l, m)` on a node whose span
 * contains it and costs `rtt/2 in + rtt/2 out + (m − l) · msPerLayer` (coordinator relay). Forward DP over layer
 * boundaries, O(Σ span length²). `layerCount` defaults to the highest span end. Pure; see design.md.
 */
export function choosePath(
  layerMap: readonly LayerMapSpan[],
  costs: ReadonlyMap<string, PathCost> | Readonly<Record<string, PathCost | undefined>>,
  options: ChoosePathOptions & { layerCount?: number } = {},
): ChoosePathResult {
  for (const s of layerMap) {
    if (!Number.isInteger(s.start) || !Number.isInteger(s.end) || s.start < 0 || s.end <= s.start) {
      throw new TesseraError("bad_request", `choosePath: span of ${s.nodeId} must satisfy 0 ≤ start < end, got [${s.start}, ${s.end})`);
    }
  }
  const L = options.layerCount ?? layerMap.reduce((m, s) => Math.max(m, s.end), 0);
  if (!Number.isInteger(L) || L < 1) throw new TesseraError("bad_request", `choosePath: layerCount must be an integer ≥ 1, got ${L}`);
  const costOf = (id: string): PathCost | undefined =>
    costs instanceof Map ? costs.get(id) : (costs as Record<string, PathCost | undefined>)[id];

  const spans = layerMap.filter((s) => !options.exclude?.has(s.nodeId));
  const covered = new Uint8Array(L);
  for (const s of spans) for (let l = s.start; l < Math.min(s.end, L); l++) covered[l] = 1;
  const missing: number[] = [];
  for (let l = 0; l < L; l++) if (!covered[l]) missing.push(l);
  if (missing.length > 0) {
    const missingLayers = indicesToRanges(missing);
    return {
      ok: false,
      reason: "uncovered_layers",
      missingLayers,
      message: `no available node holds ${describeRanges(missingLayers)}`,
    };
  }

  const measured = spans.map((s) => costOf(s.nodeId)?.msPerLayer).filter((v): v is number => v !== undefined && v > 0);
  const msPrior = median(measured) ?? DEFAULT_MS_PER_LAYER;
  const edges = spans.map((s) => {
    const c = costOf(s.nodeId);
    const ms = c?.msPerLayer !== undefined && c.msPerLayer > 0 ? c.msPerLayer : msPrior;
    const rtt = c?.rttMs !== undefined && c.rttMs >= 0 ? c.rttMs : DEFAULT_PATH_RTT_MS;
    return { nodeId: s.nodeId, start: s.start, end: Math.min(s.end, L), ms, hop: rtt / 2 + rtt / 2 };
  });

  const best = new Float64Array(L + 1).fill(Infinity);
  const hops = new Int32Array(L + 1);
  const from = new Int32Array(L + 1).fill(-1);
  const via: (string | undefined)[] = new Array(L + 1);
  best[0] = 0;
  for (let l = 0; l < L; l++) {
    if (best[l] === Infinity) continue;
    for (const e of edges) {
      if (e.start > l || e.end <= l) continue;
      for (let m = l + 1; m <= e.end; m++) {
        const cost = best[l]! + e.hop + (m - l) * e.ms;
        const h = hops[l]! + 1;
        if (cost < best[m]! || (cost === best[m]! && (h < hops[m]! || (h === hops[m]! && e.nodeId < via[m]!)))) {
          best[m] = cost;
          hops[m] = h;
          from[m] = l;
          via[m] = e.nodeId;
        }
      }
    }
  }

  const segments: PathSegment[] = [];
  for (let m = L; m > 0; m = from[m]!) segments.push({ nodeId: via[m]!, start: from[m]!, end: m });
  segments.reverse();
  return { ok: true, segments, costMs: best[L]! };
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
