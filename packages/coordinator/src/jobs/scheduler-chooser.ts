import { featuresOf, sha256Hex } from "@tessera/protocol";
import { type NodeSnapshot, isWaitable, pick } from "../scheduler/index.js";
import type { LiveNode } from "../registry.js";
import type { LiveJob } from "./live-job.js";
import type { NodeChooser } from "./node-chooser.js";
import type { SpeedMetrics } from "./speed-metrics.js";
import type { NodeStanding } from "../trust/node-standing.js";

const PREFIXES_PER_NODE = 64;
/** Up to this many nodes, every node is scored for every job. */
export const FULL_SCAN_LIMIT = 512;
/** Above it, a uniform random sample of this many, plus the nodes that recently served the job's prefix. */
export const SAMPLE_SIZE = 128;
const NODES_PER_PREFIX = 8;
const MAX_TRACKED_PREFIXES = 100_000;
const NO_PERF: NodeSnapshot["perf"] = Object.freeze({});

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What routing reads of a node's standing: its score, quarantine and cooldown (trust/node-standing.ts). */
export type RoutingStanding = Pick<NodeStanding, "reputation" | "isQuarantined" | "isCoolingDown">;

interface CachedSnapshot {
  snap: Mutable<NodeSnapshot>;
  modelsRef: unknown;
  perfModel: string | undefined;
  perfEntry: { tokensPerSecond?: number | undefined; ttftMs?: number };
}

/**
 * Feeds the pure scheduler (`pick`) from the live registry: builds node snapshots, estimates the prompt, hashes the
 * system prompt for affinity, and remembers which prefixes each node has recently served.
 */
export class SchedulerChooser implements NodeChooser {
  private readonly recentPrefixes = new Map<string, Map<string, number>>();
  /** Prefix hash → the nodes that most recently served it (newest last): affinity candidates for a sample. */
  private readonly prefixNodes = new Map<string, string[]>();
  private readonly snapshots = new WeakMap<LiveNode, CachedSnapshot>();
  /** Scratch reused by every decision (`pick` keeps nothing): the sample, its index permutation, the snapshots. */
  private readonly sampled: LiveNode[] = [];
  private order = new Uint32Array(0);
  private readonly snapshotList: NodeSnapshot[] = [];

  constructor(
    private readonly speed: Pick<SpeedMetrics, "forModel">,
    private readonly random: () => number = Math.random,
    /** Without it every node is neutral: reputation 1, never quarantined or cooling down. */
    private readonly standing?: RoutingStanding,
  ) {}

  /**
   * In a large network a decision scores a random sample of nodes plus the ones holding the job's prefix (the
   * "power of d choices" of large load balancers), which keeps it cheap as the network grows while the choice stays
   * near the best; when the sample has no candidate, every node is scored, so a free node is never missed and the
   * reason given is exact.
   */
  choose(
    job: LiveJob,
    nodes: readonly LiveNode[],
    now: number,
    lookup: (nodeId: string) => LiveNode | undefined,
  ): { nodeId: string } | { nodeId?: undefined; reason: string; waitable: boolean } {
    const prefixHash = systemPromptHash(job);
    const requirements = {
      model: job.model,
      features: job.neededFeatures.map((n) => n.feature),
      ...(job.pinnedNodeId ? { pinnedNodeId: job.pinnedNodeId } : {}),
      promptTokens: job.estimatedPromptTokens,
      maxTokens: Math.max(1, job.sampling.max_tokens - job.completionTokens),
      ...(prefixHash ? { prefixHash } : {}),
      // Only a continuation has a file to keep to; a fresh job leaves files out of the decision entirely.
      ...(job.modelSha256 !== undefined && job.text.length > 0 ? { modelSha256: job.modelSha256 } : {}),
    };
    const options = { exclude: job.excludedNodes };
    let result;
    if (nodes.length > FULL_SCAN_LIMIT) {
      const sample = this.sample(nodes, job.pinnedNodeId, prefixHash, lookup);
      result = pick(requirements, this.snapshotAll(sample, job.model, prefixHash !== undefined, now), now, options);
      // A continuation whose sample holds no free node of its file: a same-file node outside the sample is worth one
      // full scan (failovers are rare).
      if (result.ok && requirements.modelSha256 !== undefined && result.candidates[0]!.file !== "same") result = undefined;
    }
    if (!result?.ok) result = pick(requirements, this.snapshotAll(nodes, job.model, prefixHash !== undefined, now), now, options);
    // The job already passed the model check at submission, so the model is known.
    if (!result.ok) return { reason: result.message, waitable: isWaitable(result.reason, { modelKnown: true, pinned: job.pinnedNodeId !== undefined }) };
    if (prefixHash) this.remember(result.nodeId, prefixHash, now);
    return { nodeId: result.nodeId };
  }

  private sample(
    nodes: readonly LiveNode[],
    pinned: string | undefined,
    prefixHash: string | undefined,
    lookup: (nodeId: string) => LiveNode | undefined,
  ): LiveNode[] {
    const out = this.sampled;
    out.length = 0;
    if (pinned !== undefined) {
      const node = lookup(pinned);
      if (node) out.push(node);
      return out;
    }
    for (const id of (prefixHash && this.prefixNodes.get(prefixHash)) || []) {
      const node = lookup(id);
      if (node) out.push(node);
    }
    const holders = out.length;
    // A partial Fisher–Yates shuffle of a persistent index: k distinct nodes in O(k), no allocation. Any order left
    // by the previous decision is as good a start as the identity.
    if (this.order.length !== nodes.length) this.order = Uint32Array.from({ length: nodes.length }, (_, i) => i);
    const order = this.order;
    const k = Math.min(nodes.length, SAMPLE_SIZE);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.random() * (order.length - i));
      const picked = order[j]!;
      order[j] = order[i]!;
      order[i] = picked;
      const node = nodes[picked]!;
      let holder = false;
      for (let h = 0; h < holders && !holder; h++) holder = out[h] === node;
      if (!holder) out.push(node);
    }
    return out;
  }

  /**
   * The node as the scheduler sees it. Snapshots are reused and updated in place (routing runs for every job over
   * every node, and building fresh objects each time was most of its cost): `pick` reads them and keeps nothing.
   */
  private snapshotAll(nodes: readonly LiveNode[], model: string, withPrefixes: boolean, now: number): NodeSnapshot[] {
    const measured = this.speed.forModel(model);
    const out = this.snapshotList;
    out.length = nodes.length;
    for (let i = 0; i < nodes.length; i++) out[i] = this.snapshot(nodes[i]!, model, measured?.get(nodes[i]!.id), withPrefixes, now);
    return out;
  }

  /** `withPrefixes`: the job has a prefix to match, so the node's recent prefixes are looked up (else left out). */
  private snapshot(node: LiveNode, model: string, m: { tokensPerSecond: number; ttftMs: number } | undefined, withPrefixes: boolean, now: number): NodeSnapshot {
    let cached = this.snapshots.get(node);
    if (!cached) {
      cached = { modelsRef: undefined, perfModel: undefined, perfEntry: {}, snap: { id: node.id, online: false, draining: false, quarantined: false, models: [], activeJobs: 0, maxConcurrency: 1, reputation: 1, perf: {} } };
      this.snapshots.set(node, cached);
    }
    const snap = cached.snap;
    if (cached.modelsRef !== node.models) {
      cached.modelsRef = node.models;
      snap.models = node.models.map((m) => m.id);
      snap.modelFeatures = Object.fromEntries(node.models.map((m) => [m.id, featuresOf(m)]));
      const files = node.models.filter((m) => m.sha256 !== undefined);
      snap.modelFiles = files.length > 0 ? Object.fromEntries(files.map((m) => [m.id, m.sha256])) : undefined;
    }
    snap.online = node.online && node.worker !== undefined;
    snap.draining = node.draining;
    snap.activeJobs = node.activeJobs.size + node.jobsElsewhere;
    snap.maxConcurrency = node.maxConcurrency;
    snap.rttMs = node.worker?.rtt();
    if (this.standing) {
      snap.reputation = this.standing.reputation(node.id);
      snap.quarantined = this.standing.isQuarantined(node.id);
      snap.coolingDown = this.standing.isCoolingDown(node.id, now);
    }
    if (m) {
      if (cached.perfModel !== model) {
        cached.perfModel = model;
        snap.perf = { [model]: cached.perfEntry };
      }
      cached.perfEntry.tokensPerSecond = m.tokensPerSecond > 0 ? m.tokensPerSecond : undefined;
      cached.perfEntry.ttftMs = m.ttftMs;
    } else {
      cached.perfModel = undefined;
      snap.perf = NO_PERF;
    }
    snap.recentPrefixes = withPrefixes ? this.recentPrefixes.get(node.id) : undefined;
    return snap;
  }

  private remember(nodeId: string, prefixHash: string, now: number): void {
    const holders = (this.prefixNodes.get(prefixHash) ?? []).filter((id) => id !== nodeId);
    holders.push(nodeId);
    if (holders.length > NODES_PER_PREFIX) holders.shift();
    this.prefixNodes.delete(prefixHash);
    this.prefixNodes.set(prefixHash, holders);
    if (this.prefixNodes.size > MAX_TRACKED_PREFIXES) this.prefixNodes.delete(this.prefixNodes.keys().next().value!);
    let prefixes = this.recentPrefixes.get(nodeId);
    if (!prefixes) this.recentPrefixes.set(nodeId, (prefixes = new Map()));
    prefixes.delete(prefixHash);
    prefixes.set(prefixHash, now);
    if (prefixes.size > PREFIXES_PER_NODE) prefixes.delete(prefixes.keys().next().value!);
  }
}

function systemPromptHash(job: LiveJob): string | undefined {
  const system = job.messages.filter((m) => m.role === "system").map((m) => m.content).join("\n");
  return system ? sha256Hex(system).slice(0, 32) : undefined;
}
