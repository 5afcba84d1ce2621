import type { FastifyReply, FastifyRequest } from "fastify";
import { TesseraError } from "@tessera/protocol";
import { hashApiToken } from "../api-keys.js";
import type { AuthThrottle } from "../auth-throttle.js";
import type { Clock } from "../clock.js";
import type { RateLimiter } from "../rate-limiter.js";
import type { Store } from "../store/types.js";

export interface ClientAuthDeps {
  store: Pick<Store, "findApiKeyByHash" | "touchApiKey">;
  limiter: RateLimiter;
  clock: Clock;
  open: boolean;
  openRateLimitPerMinute: number;
  /** Counts presented-but-wrong tokens per client address (not in open mode, where any token is let through). */
  throttle?: AuthThrottle;
}

export interface Caller {
  /** `key:<api key id>` or, in open mode without a token, `addr:<client address>`. */
  ownerId: string;
}

async function apiKeyOf(header: string | undefined, deps: ClientAuthDeps) {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? deps.store.findApiKeyByHash(hashApiToken(match[1]!)) : undefined;
}

/**
 * Bearer-token authentication and per-caller rate limiting for the client API. In open mode a request without a
 * valid token is served as anonymous (limited per address) instead of refused. Sets X-RateLimit-* on every answer;
 * a refusal carries Retry-After.
 */
export async function authenticateClient(request: FastifyRequest, reply: FastifyReply, deps: ClientAuthDeps): Promise<Caller> {
  const key = await apiKeyOf(request.headers.authorization, deps);
  let ownerId: string;
  let limit: number;
  if (key) {
    ownerId = `key:${key.id}`;
    limit = key.rateLimitPerMinute;
  } else if (deps.open) {
    // Open mode: callers without a valid key (the official clients always send one) share per-address limits.
    ownerId = `addr:${request.ip}`;
    limit = deps.openRateLimitPerMinute;
  } else if (request.headers.authorization === undefined) {
    throw new TesseraError("unauthorized", "missing API key: send `Authorization: Bearer <token>` (create one with `tessera coordinator keys create`)");
  } else {
    deps.throttle?.recordFailure(request.ip, deps.clock.now());
    if (!/^Bearer\s+\S+\s*$/i.test(request.headers.authorization)) {
      throw new TesseraError("unauthorized", "Authorization header must be `Bearer <token>`");
    }
    throw new TesseraError("unauthorized", "unknown or revoked API key");
  }
  const decision = deps.limiter.take(ownerId, limit, deps.clock.now());
  reply.header("x-ratelimit-limit", String(decision.limit));
  reply.header("x-ratelimit-remaining", String(decision.remaining));
  reply.header("x-ratelimit-reset", String(decision.resetSeconds));
  if (!decision.allowed) {
    throw new TesseraError("rate_limited", `rate limit of ${decision.limit} requests per minute reached; retry in ${decision.resetSeconds} s`, {
      retryAfterSeconds: decision.resetSeconds,
    });
  }
  return { ownerId };
}

export function clientAuthDeps(ctx: {
  store: ClientAuthDeps["store"];
  limiter: RateLimiter;
  clock: Clock;
  config: { open: boolean; rateLimitPerMinute: number };
}): ClientAuthDeps {
  return { store: ctx.store, limiter: ctx.limiter, clock: ctx.clock, open: ctx.config.open, openRateLimitPerMinute: ctx.config.rateLimitPerMinute };
}
