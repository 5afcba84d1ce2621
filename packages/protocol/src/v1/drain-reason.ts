import { z } from "zod";

/**
 * Why a node stepped aside (`draining` on its session): a short closed set, because a node may send anything and the
 * dashboard shows it to everyone. The coordinator keeps a known reason and turns anything else — a typo, a newer
 * daemon's reason it does not know, free text — into `unspecified` (`drainReasonOf`); a node that sends none (an
 * older daemon) is `unspecified` too. Nothing else about the machine is said.
 *
 * - `owner_active`: its owner is using the machine (keyboard or mouse input; the idle policy, node `idle/`).
 * - `gpu_in_use`: another program is using the GPU above the policy's floor.
 * - `on_battery`: the machine runs on battery (`pause_on_battery`).
 * - `waiting_for_idle`: started, or backing off after repeated drains, and not yet quiet long enough to enlist.
 * - `shutting_down`: the daemon is stopping.
 */
export const DRAIN_REASONS = ["owner_active", "gpu_in_use", "on_battery", "waiting_for_idle", "shutting_down", "unspecified"] as const;
export const DrainReason = z.enum(DRAIN_REASONS);
export type DrainReason = z.infer<typeof DrainReason>;

/** A reason as a node sent it (any JSON value, or nothing) → one of `DRAIN_REASONS`; never throws. */
export function drainReasonOf(value: unknown): DrainReason {
  return typeof value === "string" && (DRAIN_REASONS as readonly string[]).includes(value) ? (value as DrainReason) : "unspecified";
}
