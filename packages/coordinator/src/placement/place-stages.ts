import { TesseraError } from "@tessera/protocol";
import { describeRanges } from "./layer-ranges.js";
import type { PlacementNode, PlaceStagesInput, PlaceStagesResult, StageAssignment, UnusedReason } from "./types.js";

export const DEFAULT_REPLICAS = 2;
export const DEFAULT_MEMORY_HEADROOM = 0.1;

interface Usable {
  node: PlacementNode;
  cap: number;
  bytesPerLayer: number | undefined;
}

/**
 * Places a model's layers on nodes as `replicas` complete chains (see design.md): memory is the constraint, speed
 * the objective (minimise each chain's slowest stage), at least one layer per placed node. Pure.
 */
export function placeStages(input: PlaceStagesInput): PlaceStagesResult {
  validate(input);
  const L = input.layerCount;
  const requested = input.replicas ?? DEFAULT_REPLICAS;
  const headroom = input.memoryHeadroom ?? DEFAULT_MEMORY_HEADROOM;
  const unused: Array<{ nodeId: string; reason: UnusedReason }> = [];

  const usable: Usable[] = [];
  for (const node of input.nodes) {
    const bytesPerLayer = node.bytesPerLayer ?? input.bytesPerLayer;
    const cap = bytesPerLayer === undefined ? L : Math.min(L, Math.floor((node.freeMemoryBytes * (1 - headroom)) / bytesPerLayer));
    if (cap < 1) unused.push({ nodeId: node.id, reason: "insufficient_memory" });
    else usable.push({ node, cap, bytesPerLayer });
  }
  // Fastest first; ties by id so the placement does not depend on input order.
  usable.sort((a, b) => a.node.msPerLayer - b.node.msPerLayer || compareIds(a.node.id, b.node.id));

  for (let r = Math.min(requested, usable.length); r >= 1; r--) {
    const taken = usable.slice(0, r * L);
    const chains = dealChains(taken, r, L);
    if (!chains) continue;
    for (const u of usable.slice(r * L)) unused.push({ nodeId: u.node.id, reason: "surplus" });
    const stages: StageAssignment[] = [];
    const chainBottleneckMs: number[] = [];
    chains.forEach((chain, index) => {
      const { spans, bottleneckMs } = splitChain(chain, L, index, headroom);
      stages.push(...spans);
      chainBottleneckMs.push(bottleneckMs);
    });
    return { ok: true, stages, replicasRequested: requested, replicasPlaced: r, chainBottleneckMs, unused };
  }

  const held = usable.reduce((sum, u) => sum + u.cap, 0);
  const missingLayers = [{ start: Math.min(held, L), end: L }];
  const message =
    input.nodes.length === 0
      ? `no nodes to place ${L} layers on; ${describeRanges(missingLayers)} cannot be covered`
      : `the nodes' free memory holds ${held} of ${L} layers; ${describeRanges(missingLayers)} cannot be covered`;
  return { ok: false, reason: "insufficient_memory", missingLayers, message, unused };
}

/**
 * Deals nodes into `r` chains that can each hold all `L` layers, or returns undefined. Tries balancing speed first
 * (fast nodes spread across chains) and falls back to balancing memory when that leaves a chain short.
 */
function dealChains(nodes: readonly Usable[], r: number, L: number): Usable[][] | undefined {
  const bySpeed = deal(nodes, r, (u) => 1 / u.node.msPerLayer);
  if (feasible(bySpeed, L)) return bySpeed;
  const byMemory = deal(
    [...nodes].sort((a, b) => b.cap - a.cap || compareIds(a.node.id, b.node.id)),
    r,
    (u) => u.cap,
  );
  return feasible(byMemory, L) ? byMemory : undefined;
}

/** Longest-processing-time greedy: each node (in the given order) to the chain with the least weight so far. */
function deal(nodes: readonly Usable[], r: number, weight: (u: Usable) => number): Usable[][] {
  const chains: Usable[][] = Array.from({ length: r }, () => []);
  const sums = new Array<number>(r).fill(0);
  for (const u of nodes) {
    let best = 0;
    for (let c = 1; c < r; c++) if (sums[c]! < sums[best]!) best = c;
    chains[best]!.push(u);
    sums[best]! += weight(u);
  }
  return chains;
}

function feasible(chains: Usable[][], L: number): boolean {
  return chains.every((c) => c.length >= 1 && c.length <= L && c.reduce((s, u) => s + u.cap, 0) >= L);
}

/**
 * Sizes one chain's spans to minimise its slowest stage: one layer each, then each further layer to the node whose
 * stage time after taking it is smallest (ties: more spare memory, then id). Exact for this separable convex problem.
 */
function splitChain(
  chain: readonly Usable[],
  L: number,
  chainIndex: number,
  headroom: number,
): { spans: StageAssignment[]; bottleneckMs: number } {
  const ordered = [...chain].sort((a, b) => compareIds(a.node.id, b.node.id));
  const counts = ordered.map(() => 1);
  for (let remaining = L - ordered.length; remaining > 0; remaining--) {
    let best = -1;
    let bestTime = Infinity;
    let bestSpare = -Infinity;
    ordered.forEach((u, i) => {
      if (counts[i]! >= u.cap) return;
      const time = (counts[i]! + 1) * u.node.msPerLayer;
      const spare = spareBytes(u, counts[i]! + 1, headroom);
      if (time < bestTime || (time === bestTime && spare > bestSpare)) {
        best = i;
        bestTime = time;
        bestSpare = spare;
      }
    });
    counts[best]!++; // feasible() guaranteed Σ cap ≥ L, so some node is below its cap.
  }
  const spans: StageAssignment[] = [];
  let start = 0;
  let bottleneckMs = 0;
  ordered.forEach((u, i) => {
    spans.push({ nodeId: u.node.id, start, end: start + counts[i]!, chain: chainIndex });
    start += counts[i]!;
    bottleneckMs = Math.max(bottleneckMs, counts[i]! * u.node.msPerLayer);
  });
  return { spans, bottleneckMs };
}

function spareBytes(u: Usable, layers: number, headroom: number): number {
  if (u.bytesPerLayer === undefined) return u.node.freeMemoryBytes;
  return u.node.freeMemoryBytes * (1 - headroom) - layers * u.bytesPerLayer;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function validate(input: PlaceStagesInput): void {
  const bad = (msg: string): never => {
    throw new TesseraError("bad_request", `placeStages: ${msg}`);
  };
  if (!Number.isInteger(input.layerCount) || input.layerCount < 1) bad(`layerCount must be an integer ≥ 1, got ${input.layerCount}`);
  if (input.replicas !== undefined && (!Number.isInteger(input.replicas) || input.replicas < 1)) bad(`replicas must be an integer ≥ 1, got ${input.replicas}`);
  if (input.bytesPerLayer !== undefined && !(input.bytesPerLayer > 0)) bad(`bytesPerLayer must be > 0, got ${input.bytesPerLayer}`);
  const h = input.memoryHeadroom;
  if (h !== undefined && !(h >= 0 && h < 1)) bad(`memoryHeadroom must be in [0, 1), got ${h}`);
  const seen = new Set<string>();
  for (const n of input.nodes) {
    if (seen.has(n.id)) bad(`node ${n.id} appears twice`);
    seen.add(n.id);
    if (!(n.msPerLayer > 0) || !Number.isFinite(n.msPerLayer)) bad(`node ${n.id}: msPerLayer must be a measured time > 0, got ${n.msPerLayer}`);
    if (!(n.freeMemoryBytes >= 0)) bad(`node ${n.id}: freeMemoryBytes must be ≥ 0, got ${n.freeMemoryBytes}`);
    if (n.bytesPerLayer !== undefined && !(n.bytesPerLayer > 0)) bad(`node ${n.id}: bytesPerLayer must be > 0, got ${n.bytesPerLayer}`);
    if (!(n.rttMs >= 0)) bad(`node ${n.id}: rttMs must be ≥ 0, got ${n.rttMs}`);
  }
}
