import type { Clock } from "../clock.js";
import type { JobManager } from "../jobs/job-manager.js";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import { CANARY_PROMPT_COUNT, canaryPrompt } from "./canary-prompts.js";
import type { NodeStanding } from "./node-standing.js";
import type { SpotChecks } from "./spot-checks.js";

/** Who owns canary jobs: no API key is this, so nobody is billed and no client lists them. */
export const CANARY_OWNER = "tessera:canary";
const CANARY_MAX_TOKENS = 32;
/** A node busy at its canary's time is asked again this much later (canaries never take a slot a user could use). */
const BUSY_RETRY_MS = 60_000;

export interface CanaryDeps {
  registry: NodeRegistry;
  jobs: Pick<JobManager, "submit">;
  checks: Pick<SpotChecks, "hasReferenceFor">;
  standing: Pick<NodeStanding, "isQuarantined">;
  clock: Clock;
  random: () => number;
  logger: Logger;
  /** Mean time between a node's canaries (`--canary-interval`); 0 turns canaries off. */
  intervalMs: number;
}

/**
 * Canaries (trust/design.md "Canaries"): about once per `intervalMs` per node, the coordinator itself sends the node a
 * greedy job from a rotating pool of everyday prompts, pinned to it and shaped like any user's job, and has a
 * reference score the answer whatever the node's tier. A node that serves users only sampled or JSON answers, which
 * spot checks cannot judge, is still checked this way. Times are jittered (uniform over 0.5–1.5 × the interval, and
 * the first one anywhere in the first interval), so joining or a clock tells the node nothing.
 */
export class Canaries {
  private readonly nextAt = new Map<string, number>();

  constructor(private readonly deps: CanaryDeps) {}

  /** Sends the canaries that are due; called on the coordinator's tick. */
  tick(): void {
    const { registry, clock, random, intervalMs } = this.deps;
    if (intervalMs <= 0) return;
    const now = clock.now();
    for (const node of registry.all()) {
      if (!node.online || !node.worker || node.draining || node.models.length === 0) continue;
      const due = this.nextAt.get(node.id);
      if (due === undefined) {
        this.nextAt.set(node.id, now + random() * intervalMs);
        continue;
      }
      if (now < due) continue;
      if (node.activeJobs.size + node.jobsElsewhere >= node.maxConcurrency) {
        this.nextAt.set(node.id, now + BUSY_RETRY_MS);
        continue;
      }
      this.nextAt.set(node.id, now + (0.5 + random()) * intervalMs);
      this.send(node.id, node.models.map((m) => m.id));
    }
    for (const id of this.nextAt.keys()) if (!registry.get(id)) this.nextAt.delete(id);
  }

  private send(nodeId: string, models: string[]): void {
    if (this.deps.standing.isQuarantined(nodeId)) return;
    // Only models a reference can score: a canary nobody can judge would be work for nothing.
    const checkable = models.filter((m) => this.deps.checks.hasReferenceFor(nodeId, m));
    if (checkable.length === 0) return;
    const model = checkable[Math.floor(this.deps.random() * checkable.length)]!;
    const prompt = canaryPrompt(Math.floor(this.deps.random() * CANARY_PROMPT_COUNT));
    this.deps.jobs
      .submit({
        ownerId: CANARY_OWNER,
        model,
        messages: [{ role: "user", content: prompt }],
        sampling: { max_tokens: CANARY_MAX_TOKENS, temperature: 0, top_p: 1 },
        nodeId,
        alwaysCheck: true,
      })
      .then((job) => {
        this.deps.logger.debug({ node: nodeId.slice(0, 12), job: job.id, model }, "canary sent");
      })
      .catch((err: unknown) => this.deps.logger.warn({ err, node: nodeId.slice(0, 12) }, "could not send a canary"));
  }
}
