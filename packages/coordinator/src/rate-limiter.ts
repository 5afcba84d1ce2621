/**
 * Fixed one-minute windows per caller (API key or, in open mode, client address). Pure apart from the injected clock.
 * The headers it reports are X-RateLimit-Limit/Remaining/Reset (seconds until the window resets).
 */
export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetSeconds: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly windowMs = 60_000) {}

  take(key: string, limit: number, now: number): RateDecision {
    let window = this.windows.get(key);
    if (!window || now - window.start >= this.windowMs) {
      window = { start: now, count: 0 };
      this.windows.set(key, window);
      if (this.windows.size > 100_000) this.evict(now);
    }
    const resetSeconds = Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000));
    if (window.count >= limit) return { allowed: false, limit, remaining: 0, resetSeconds };
    window.count++;
    return { allowed: true, limit, remaining: limit - window.count, resetSeconds };
  }

  private evict(now: number): void {
    for (const [key, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(key);
  }
}
