import type { DashboardNode } from "@tessera/protocol";
import type { CoordinatorContext } from "../context.js";

/** What the Network and Nodes pages read from the live coordinator: the registry, standing, speeds and job counts. */
export interface NetworkSource {
  /** Every node this coordinator knows, online first, then by id. */
  nodes(now: number): DashboardNode[];
  /** Jobs running on (active) or waiting for (pending) a node now. */
  jobsInFlight(): { active: number; pending: number };
  /** Jobs that have ended since the process started (the `tessera_jobs_finished_total` counter, all labels). */
  jobsFinishedTotal(): Promise<number>;
  /** Completion tokens relayed to clients since the process started (`tessera_completion_tokens_total`). */
  completionTokensTotal(): Promise<number>;
  /** Models at least one online node serves. */
  onlineModels(): number;
  /** Σ over online nodes of their best measured decode speed on any model (tokens/s). */
  capacityTokensPerSecond(): number;
}

export function networkSourceOf(ctx: Pick<CoordinatorContext, "registry" | "standing" | "speed" | "jobs" | "metrics">): NetworkSource {
  const bestSpeed = (nodeId: string, models: readonly string[]) =>
    models.reduce((best, model) => Math.max(best, ctx.speed.get(nodeId, model)?.tokensPerSecond ?? 0), 0);
  return {
    nodes(now) {
      const rows: DashboardNode[] = [];
      for (const n of ctx.registry.all()) {
        const standing = ctx.standing.view(n.id, now);
        const online = n.online;
        rows.push({
          node_id: n.id,
          status: online ? "online" : "offline",
          state: !online ? "offline" : n.draining ? "draining" : "serving",
          drain_reason: online && n.draining ? (n.drainReason ?? "unspecified") : null,
          operator: n.operatorId,
          version: n.version,
          hardware_class: n.hardware.tier ?? null,
          cpu_cores: n.hardware.cpu_cores,
          ram_mb: n.hardware.ram_mb,
          gpus: n.hardware.gpus.map((g) => ({ name: g.name, vram_mb: g.vram_mb })),
          models: n.models.map((m) => m.id),
          active_jobs: n.activeJobs.size,
          max_concurrency: n.maxConcurrency,
          last_seen_at: new Date(n.lastSeenAt).toISOString(),
          tier: standing.tier,
          reputation: { score: standing.score, completion: standing.completion, speed: standing.speed, verification: standing.verification },
          checks: { passed: standing.checksPassed, failed: standing.checksFailed },
          quarantined: standing.quarantined,
        });
      }
      return rows.sort((a, b) => (a.status === b.status ? a.node_id.localeCompare(b.node_id) : a.status === "online" ? -1 : 1));
    },
    jobsInFlight() {
      const active = ctx.jobs.activeCount;
      const pending = ctx.jobs.pendingCount;
      return { active: Math.max(0, active - pending), pending };
    },
    async jobsFinishedTotal() {
      const metric = await ctx.metrics.jobsFinished.get();
      return metric.values.reduce((sum, v) => sum + v.value, 0);
    },
    async completionTokensTotal() {
      const metric = await ctx.metrics.completionTokens.get();
      return metric.values.reduce((sum, v) => sum + v.value, 0);
    },
    onlineModels() {
      return ctx.registry.onlineModels().size;
    },
    capacityTokensPerSecond() {
      let total = 0;
      for (const n of ctx.registry.all()) if (n.online) total += bestSpeed(n.id, n.models.map((m) => m.id));
      return Math.round(total * 10) / 10;
    },
  };
}
