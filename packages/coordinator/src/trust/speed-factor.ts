/**
 * The speed factor of a node's reputation: how its measured decode speed for each model compares with what nodes of
 * the same hardware class (the `hardware.tier` it registered) achieve for that model (design.md, "Reputation").
 *
 * The scheduler already prices speed in milliseconds, so a fast node needs no bonus here (the factor is at most 1)
 * and a slow one is not charged twice without bound (the factor is at least `SPEED_FACTOR_FLOOR`). What this factor
 * adds is the comparison with peers: a node that registers as a 24 GB GPU and decodes like a CPU is either
 * misreporting or throttled, and either way less worth sending work to than its class suggests.
 */

export interface SpeedSample {
  nodeId: string;
  model: string;
  /** The node's registered `hardware.tier`; nodes that gave none form their own class. */
  hardwareClass: string;
  /** Solo-equivalent decode tokens/s (the scheduler's EWMA). */
  tokensPerSecond: number;
  /** Jobs behind the figure. */
  jobs: number;
}

/** A node's figure for a model counts once this many jobs measured it: one job's speed is mostly its prompt. */
export const SPEED_MIN_JOBS = 3;
/** A class's figure for a model needs this many measured nodes (the node itself included), or there is no comparison. */
export const SPEED_MIN_PEERS = 3;
export const SPEED_FACTOR_FLOOR = 0.5;

/** The class a node without a registered tier is compared in. */
export const UNSPECIFIED_CLASS = "unspecified";

/**
 * Each node's speed factor: for every model it has a trusted figure for and whose class has enough measured peers,
 * its tokens/s over the class median (capped at 1); the mean of those ratios weighted by jobs, floored. A node with
 * nothing to compare gets 1 (no evidence is not bad evidence). Nodes absent from the answer have factor 1.
 */
export function speedFactors(samples: Iterable<SpeedSample>): Map<string, number> {
  const usable: SpeedSample[] = [];
  const byClass = new Map<string, number[]>();
  for (const s of samples) {
    if (!(s.jobs >= SPEED_MIN_JOBS) || !(s.tokensPerSecond > 0) || !Number.isFinite(s.tokensPerSecond)) continue;
    usable.push(s);
    const key = classKey(s);
    const list = byClass.get(key);
    if (list) list.push(s.tokensPerSecond);
    else byClass.set(key, [s.tokensPerSecond]);
  }
  const medians = new Map<string, number>();
  for (const [key, values] of byClass) if (values.length >= SPEED_MIN_PEERS) medians.set(key, median(values));

  const sums = new Map<string, { weighted: number; weight: number }>();
  for (const s of usable) {
    const classMedian = medians.get(classKey(s));
    if (classMedian === undefined) continue;
    const ratio = Math.min(1, s.tokensPerSecond / classMedian);
    const sum = sums.get(s.nodeId) ?? { weighted: 0, weight: 0 };
    sum.weighted += ratio * s.jobs;
    sum.weight += s.jobs;
    sums.set(s.nodeId, sum);
  }
  const factors = new Map<string, number>();
  for (const [nodeId, { weighted, weight }] of sums) factors.set(nodeId, Math.max(SPEED_FACTOR_FLOOR, weighted / weight));
  return factors;
}

function classKey(s: SpeedSample): string {
  // JSON keeps a model id and a class name from ever running together into another pair's key.
  return JSON.stringify([s.model, s.hardwareClass]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
