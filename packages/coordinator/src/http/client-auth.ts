import type { FastifyReply, FastifyRequest } from "fastify";
import { TesseraError } from "@tessera/protocol";
import { hashApiToken } from "../api-keys.js";
import type { Clock } from "../clock.js";
import type { RateLimiter } from "../rate-limiter.js";
import type { Store } from "../store/types.js";

export interface ClientAuthDeps {
  store: Pick<Store, "findApiKeyByHash" | "touchApiKey">;
  limiter: RateLimiter;
  clock: Clock;
  open: boolean;
  openRateLimitPerMinute: number;
}

export interface Caller {
  /** `key:<api key id>` or, in open mode without a token, `addr:<client address>`. */
  ownerId: string;
}

/**
 * Bearer-token authentication and per-caller rate limiting for the client API. A token, when sent, must be valid
 * even in open mode. Sets X-RateLimit-* on every answer; a refusal carries Retry-After.
 */
export async function authenticateClient(request: FastifyRequest, reply: FastifyReply, deps: ClientAuthDeps): Promise<Caller> {
  const header = request.headers.authorization;
  let ownerId: string;
  let limit: number;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new TesseraError("unauthorized", "Authorization header must be `Bearer <token>`");
    const key = await deps.store.findApiKeyByHash(hashApiToken(match[1]!));
    if (!key) throw new TesseraError("unauthorized", "unknown or revoked API key");
    ownerId = `key:${key.id}`;
    limit = key.rateLimitPerMinute;
  } else if (deps.open) {
    ownerId = `addr:${request.ip}`;
    limit = deps.openRateLimitPerMinute;
  } else {
    throw new TesseraError("unauthorized", "missing API key: send `Authorization: Bearer <token>` (create one with `tessera coordinator keys create`)");
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
