import { TesseraError } from "@tessera/protocol";
import { DEFAULT_EXPLAIN_TOP, DEFAULT_PRIORS, DEFAULT_WEIGHTS, MIN_REPUTATION } from "./defaults.js";
import { emptyRejections, FILTER_STAGES, noCandidateMessage } from "./no-candidate.js";
import type {
  CandidateScore,
  FileMatch,
  FilterReason,
  JobRequirements,
  NodeSnapshot,
  PickOptions,
  PickResult,
  Priors,
  ScoreWeights,
} from "./types.js";

/**
 * Chooses the node to run `job`: filter → score → choose (see design.md). Pure: same inputs, same answer; `now` (ms)
 * is only used to age prefix-affinity entries. O(n): one pass to filter, one to score, a quickselect median for the
 * priors, and only the best `explainTop` candidates kept in order for the log.
 */
export function pick(
  job: JobRequirements,
  nodes: readonly NodeSnapshot[],
  now: number,
  options: PickOptions = {},
): PickResult {
  if (!(job.maxTokens >= 1) || !(job.promptTokens >= 0)) {
    throw new TesseraError("bad_request", `job needs maxTokens >= 1 and promptTokens >= 0, got ${job.maxTokens} and ${job.promptTokens}`);
  }
  const weights: ScoreWeights = options.weights ? { ...DEFAULT_WEIGHTS, ...options.weights } : DEFAULT_WEIGHTS;
  const priors: Priors = options.priors ? { ...DEFAULT_PRIORS, ...options.priors } : DEFAULT_PRIORS;
  const rejected = emptyRejections();
  const candidates: NodeSnapshot[] = [];
  // Measurements of every online node serving the model, busy or not: the population the priors come from.
  const measuredTps: number[] = [];
  const measuredTtft: number[] = [];
  let needPrior = false;

  for (const node of nodes) {
    const reason = filterReason(node, job, options.exclude);
    if (reason === "offline" || reason === "model_not_served") {
      rejected[reason]++;
      continue;
    }
    const perf = node.perf[job.model];
    const tps = perf?.tokensPerSecond;
    const ttft = perf?.ttftMs;
    if (tps !== undefined && tps > 0) measuredTps.push(tps);
    if (ttft !== undefined && ttft >= 0) measuredTtft.push(ttft);
    if (reason !== undefined) {
      rejected[reason]++;
      continue;
    }
    if (tps === undefined || !(tps > 0) || ttft === undefined || !(ttft >= 0)) needPrior = true;
    candidates.push(node);
  }

  if (candidates.length === 0) {
    let reason = FILTER_STAGES[0]![1];
    for (const [filter, noCandidate] of FILTER_STAGES) if (rejected[filter] > 0) reason = noCandidate;
    return { ok: false, reason, message: noCandidateMessage(reason, job.model, job.pinnedNodeId), rejected };
  }

  const tpsPrior = needPrior ? (median(measuredTps) ?? priors.tokensPerSecond) : priors.tokensPerSecond;
  const ttftPrior = needPrior
    ? (median(measuredTtft) ?? (job.promptTokens / priors.prefillTokensPerSecond) * 1000 + priors.ttftBaseMs)
    : 0;

  // Keep only the best `explainTop` in order (insertion into a short sorted list): O(n · k) with k small, instead of
  // sorting thousands of candidates that no log line will show.
  const keep = Math.max(1, Math.floor(options.explainTop ?? DEFAULT_EXPLAIN_TOP));
  const top: CandidateScore[] = [];
  // Each node is scored into one scratch record; only one that makes the top list is copied, so a decision over
  // thousands of nodes allocates a handful of objects, not one per node (GC pauses showed in routing's p99).
  const scratch = {} as CandidateScore;
  for (const node of candidates) {
    score(node, job, now, weights, priors, tpsPrior, ttftPrior, scratch);
    if (top.length === keep && compareCandidates(scratch, top[keep - 1]!) >= 0) continue;
    const c = { ...scratch };
    let i = top.length === keep ? keep - 1 : top.length;
    while (i > 0 && compareCandidates(c, top[i - 1]!) < 0) {
      top[i] = top[i - 1]!;
      i--;
    }
    top[i] = c;
  }
  return { ok: true, nodeId: top[0]!.nodeId, candidates: top, candidateCount: candidates.length, rejected };
}

/** The first filter (in FILTER_STAGES order) that removes `node`, or undefined when it is a candidate. */
function filterReason(
  node: NodeSnapshot,
  job: JobRequirements,
  exclude: ReadonlySet<string> | undefined,
): FilterReason | undefined {
  if (!node.online) return "offline";
  if (!node.models.includes(job.model) || !offersFeatures(node, job)) return "model_not_served";
  if (job.pinnedNodeId !== undefined && node.id !== job.pinnedNodeId) return "not_pinned";
  if (node.quarantined) return "quarantined";
  if (node.draining) return "draining";
  if (exclude?.has(node.id)) return "excluded";
  if (node.activeJobs >= node.maxConcurrency) return "busy";
  return undefined;
}

/** Scores `node` into `out` (and returns it). */
function score(
  node: NodeSnapshot,
  job: JobRequirements,
  now: number,
  w: ScoreWeights,
  priors: Priors,
  tpsPrior: number,
  ttftPrior: number,
  out: CandidateScore,
): CandidateScore {
  const perf = node.perf[job.model];
  const measuredTps = perf?.tokensPerSecond !== undefined && perf.tokensPerSecond > 0;
  const measuredTtft = perf?.ttftMs !== undefined && perf.ttftMs >= 0;
  const tokensPerSecond = measuredTps ? perf!.tokensPerSecond! : tpsPrior;
  let nodeTtft = measuredTtft ? perf!.ttftMs! : ttftPrior;

  const active = Math.max(0, node.activeJobs);
  const load = 1 + w.queueWeight * active;
  const rttMs = node.rttMs !== undefined && node.rttMs >= 0 ? node.rttMs : priors.rttMs;

  let affinity = false;
  if (job.prefixHash !== undefined && node.recentPrefixes !== undefined) {
    const lastUsed = node.recentPrefixes.get(job.prefixHash);
    const utilisation = active / Math.max(1, node.maxConcurrency);
    if (lastUsed !== undefined && now - lastUsed <= w.prefixTtlMs && utilisation < w.affinityMaxLoad) {
      affinity = true;
      nodeTtft *= 1 - w.affinityDiscount;
    }
  }

  const ttftMs = rttMs + nodeTtft * load;
  const completionMs = ttftMs + (job.maxTokens / tokensPerSecond) * 1000 * load;
  const reputation = Math.max(MIN_REPUTATION, Number.isFinite(node.reputation) ? node.reputation : 1);
  out.nodeId = node.id;
  out.cost = (w.ttftWeight * ttftMs + w.completionWeight * completionMs) / reputation ** w.reputationWeight;
  out.ttftMs = ttftMs;
  out.completionMs = completionMs;
  out.rttMs = rttMs;
  out.load = load;
  out.tokensPerSecond = tokensPerSecond;
  out.speedSource = measuredTps ? "measured" : "prior";
  out.ttftSource = measuredTtft ? "measured" : "prior";
  out.affinity = affinity;
  out.reputation = reputation;
  out.coolingDown = node.coolingDown === true;
  out.file = job.modelSha256 === undefined ? undefined : fileMatch(job.modelSha256, node.modelFiles?.[job.model]);
  return out;
}

/** How a node's file for the model (`held`, undefined when it reports none) relates to the one a continuation wants. */
export function fileMatch(wanted: string, held: string | undefined): FileMatch {
  return held === undefined ? "unknown" : held === wanted ? "same" : "other";
}

/** 0 for a node holding the job's file (or when the job names none), 1 for an unknown file, 2 for another file. */
function fileRank(file: FileMatch | undefined): number {
  return file === "other" ? 2 : file === "unknown" ? 1 : 0;
}

/**
 * For a continuation, a node holding the answer's model file before one whose file is unknown, and that before one
 * holding another file (design.md "Continuations"); then a node in cooldown after every node that is not (it serves
 * only when nothing else can take the job now); then the lowest cost; ties: fewer active jobs (lower load), then the
 * smaller id, so the order is total.
 */
function compareCandidates(a: CandidateScore, b: CandidateScore): number {
  const files = fileRank(a.file) - fileRank(b.file);
  if (files !== 0) return files;
  if (a.coolingDown !== b.coolingDown) return a.coolingDown ? 1 : -1;
  if (a.cost !== b.cost) return a.cost - b.cost;
  if (a.load !== b.load) return a.load - b.load;
  return a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0;
}

/** Median by quickselect, O(n) expected; `values` is reordered. */
function median(values: number[]): number | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  const upper = select(values, n >> 1);
  if (n % 2 === 1) return upper;
  let lower = -Infinity;
  for (let i = 0; i < n >> 1; i++) if (values[i]! > lower) lower = values[i]!;
  return (lower + upper) / 2;
}

/** The k-th smallest (0-based); afterwards values[0..k) ≤ values[k] ≤ values(k..n). Hoare partition, middle pivot. */
function select(values: number[], k: number): number {
  let lo = 0;
  let hi = values.length - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i]! < pivot) i++;
      while (values[j]! > pivot) j--;
      if (i <= j) {
        const t = values[i]!;
        values[i] = values[j]!;
        values[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return values[k]!;
}

const CHAT_ONLY: ReadonlySet<string> = new Set(["chat"]);

/** The node's model offers every feature the job needs (no features asked: any node serving the model). */
function offersFeatures(node: NodeSnapshot, job: JobRequirements): boolean {
  if (!job.features || job.features.length === 0) return true;
  const offered = node.modelFeatures?.[job.model] ?? CHAT_ONLY;
  return job.features.every((f) => offered.has(f));
}
