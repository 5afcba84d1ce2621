import { z } from "zod";
import { DrainReason } from "./drain-reason.js";

/**
 * A node's standing on the network (trust issue §5). `probation`: its operator has completed fewer than 200 jobs;
 * `suspect`: a failed check made cheating likely, so every job it runs is checked; `trusted`: a long clean record;
 * `normal`: everything else. The tier sets the share of its jobs that reference nodes check.
 */
export const NODE_TIERS = ["probation", "normal", "trusted", "suspect"] as const;
export const NodeTier = z.enum(NODE_TIERS);
export type NodeTier = z.infer<typeof NodeTier>;

/** The score the scheduler divides a node's cost by, and its three factors (each 0..1; score = their product). */
export const NodeReputation = z.object({
  score: z.number().min(0).max(1),
  /** From the rolling completion rate of its recent jobs, on a ladder of tiers (1.0 above 99.5 %). */
  completion: z.number().min(0).max(1),
  /** Its measured speed against nodes of its hardware class, for the models it serves (at most 1). */
  speed: z.number().min(0).max(1),
  /** 1 − the probability that it cheats, from the checks of its results. */
  verification: z.number().min(0).max(1),
});
export type NodeReputation = z.infer<typeof NodeReputation>;

/** `GET /api/v1/nodes/:id` (public): what the network knows of a node's reliability and honesty. */
export const NodeView = z.object({
  node_id: z.string(),
  status: z.enum(["online", "offline"]),
  /** The operator the node belongs to (its own id when it has no operator delegation). */
  operator: z.string(),
  tier: NodeTier,
  reputation: NodeReputation,
  checks: z.object({ passed: z.number().int().min(0), failed: z.number().int().min(0) }),
  /** No jobs are routed to it and its earnings are held. */
  quarantined: z.boolean(),
  /**
   * Present while the node is online and draining (taking no new jobs): why, as it said (drain-reason.ts), e.g.
   * `owner_active` when its owner is using the machine. Absent when it serves or is offline.
   */
  drain_reason: DrainReason.optional(),
  /** Present while a failed or timed-out job keeps it at the back of the routing order (ISO 8601). */
  cooldown_until: z.string().optional(),
});
export type NodeView = z.infer<typeof NodeView>;
