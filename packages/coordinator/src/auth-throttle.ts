/**
 * Throttles credential guessing per client address: after `maxFailures` failed authentications (a wrong bearer
 * token, a malformed or stale signature header, a bad node signature, a replayed nonce) within `windowMs`, every
 * authenticated request from that address is refused for `lockoutMs` with `rate_limited` and Retry-After, before
 * any store lookup. A success does not clear the count (one valid key must not launder guesses made beside it);
 * the count lapses `windowMs` after the first failure of the window, the lockout after `lockoutMs`.
 *
 * Pure apart from the `now` each call is given (milliseconds); memory is bounded by evicting lapsed entries.
 */
export interface AuthThrottleOptions {
  maxFailures: number;
  windowMs: number;
  lockoutMs: number;
  /** Addresses tracked before lapsed entries are swept (and, when still over, the oldest dropped). */
  maxEntries: number;
}

export const DEFAULT_AUTH_THROTTLE: AuthThrottleOptions = { maxFailures: 10, windowMs: 60_000, lockoutMs: 60_000, maxEntries: 100_000 };

interface Entry {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

export class AuthThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly options: AuthThrottleOptions;

  constructor(options: Partial<AuthThrottleOptions> = {}) {
    this.options = { ...DEFAULT_AUTH_THROTTLE, ...options };
  }

  /** Seconds until `address` may try again, or 0 when it is not locked out. */
  retryAfterSeconds(address: string, now: number): number {
    const entry = this.entries.get(address);
    if (!entry || entry.blockedUntil <= now) return 0;
    return Math.max(1, Math.ceil((entry.blockedUntil - now) / 1000));
  }

  /** Records one failed authentication; returns the lockout in seconds it started (0 when none). */
  recordFailure(address: string, now: number): number {
    let entry = this.entries.get(address);
    if (!entry || (now - entry.windowStart >= this.options.windowMs && entry.blockedUntil <= now)) {
      entry = { windowStart: now, failures: 0, blockedUntil: 0 };
      this.entries.delete(address);
      this.entries.set(address, entry);
      if (this.entries.size > this.options.maxEntries) this.evict(now);
    }
    entry.failures++;
    if (entry.failures >= this.options.maxFailures && entry.blockedUntil <= now) {
      entry.blockedUntil = now + this.options.lockoutMs;
      // The next window starts when the lockout ends: one more failure then is not yet another lockout.
      entry.windowStart = entry.blockedUntil;
      entry.failures = 0;
    }
    return this.retryAfterSeconds(address, now);
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(now: number): void {
    for (const [address, e] of this.entries) {
      if (e.blockedUntil <= now && now - e.windowStart >= this.options.windowMs) this.entries.delete(address);
    }
    // Still over (a flood of distinct addresses): drop the oldest insertions first.
    for (const address of this.entries.keys()) {
      if (this.entries.size <= this.options.maxEntries) break;
      this.entries.delete(address);
    }
  }
}
