import { sha256Hex } from "@tessera/protocol";
import { type NodeSnapshot, pick } from "../scheduler/index.js";
import type { NodeRecord } from "../registry.js";
import type { LiveJob } from "./live-job.js";
import type { NodeChooser } from "./node-chooser.js";

export interface MetricsLookup {
  nodeModelMetrics(nodeId: string, model: string): { tokensPerSecond: number; ttftMs: number } | undefined;
}

const PREFIXES_PER_NODE = 64;

/**
 * Feeds the pure scheduler (`pick`) from the live registry: builds node snapshots, estimates the prompt, hashes the
 * system prompt for affinity, and remembers which prefixes each node has recently served.
 */
export class SchedulerChooser implements NodeChooser {
  private readonly recentPrefixes = new Map<string, Map<string, number>>();

  constructor(private readonly metrics: MetricsLookup) {}

  choose(job: LiveJob, nodes: NodeRecord[], now: number): { nodeId: string } | { nodeId?: undefined; reason: string } {
    const prefixHash = systemPromptHash(job);
    const promptChars = job.messages.reduce((n, m) => n + m.content.length, 0) + job.text.length;
    const result = pick(
      {
        model: job.model,
        ...(job.pinnedNodeId ? { pinnedNodeId: job.pinnedNodeId } : {}),
        promptTokens: Math.ceil(promptChars / 4),
        maxTokens: Math.max(1, job.sampling.max_tokens - job.completionTokens),
        ...(prefixHash ? { prefixHash } : {}),
      },
      nodes.map((n) => this.snapshot(n, job.model)),
      now,
      { exclude: job.excludedNodes },
    );
    if (!result.ok) return { reason: result.message };
    if (prefixHash) this.remember(result.nodeId, prefixHash, now);
    return { nodeId: result.nodeId };
  }

  private snapshot(node: NodeRecord, model: string): NodeSnapshot {
    const m = this.metrics.nodeModelMetrics(node.id, model);
    const rtt = node.session?.rttMs();
    return {
      id: node.id,
      online: node.online && node.session !== undefined,
      draining: node.draining,
      quarantined: false,
      models: node.models.map((s) => s.id),
      activeJobs: node.activeJobs.size,
      maxConcurrency: node.maxConcurrency,
      ...(rtt !== undefined ? { rttMs: rtt } : {}),
      reputation: 1,
      perf: m ? { [model]: { ...(m.tokensPerSecond > 0 ? { tokensPerSecond: m.tokensPerSecond } : {}), ttftMs: m.ttftMs } } : {},
      ...(this.recentPrefixes.has(node.id) ? { recentPrefixes: this.recentPrefixes.get(node.id)! } : {}),
    };
  }

  private remember(nodeId: string, prefixHash: string, now: number): void {
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
