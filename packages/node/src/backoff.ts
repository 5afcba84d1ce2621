/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the delay for
 * attempt n is uniform in [0, min(cap, base·2^n)). Full jitter spreads a fleet of nodes reconnecting after a
 * coordinator restart, instead of having them all knock at once. The floor keeps a tight loop from spinning.
 */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
  floorMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, capMs: 30_000, floorMs: 50 };

export function backoffDelayMs(attempt: number, random: () => number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(policy.floorMs, Math.floor(random() * ceiling));
}
