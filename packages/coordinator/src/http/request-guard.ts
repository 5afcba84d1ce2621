import type { FastifyInstance, FastifyRequest } from "fastify";
import { AUTH_HEADER, type AuthFailure, TesseraError, isOperatorToken, verifyOperatorToken } from "@tessera/protocol";
import { AuthThrottle } from "../auth-throttle.js";
import type { Clock } from "../clock.js";
import { RateLimiter } from "../rate-limiter.js";
import { authenticateClient, type Caller, type ClientAuthDeps } from "./client-auth.js";
import { checkNodeAuthHeaders, claimSharedNonce, NODE_AUTH_REASONS, type NodeAuthDeps, type VerifiedNodeRequest, verifyNodeRequest } from "./node-auth.js";

/**
 * Who may call a route, declared in its options (`{ config: { auth: "client" } }`) and checked from the headers in
 * `onRequest`, before a byte of the body is read:
 * - `client`: an API key (`Authorization: Bearer …`), or anonymous per address in open mode; the rate limit too.
 * - `node`: a signed node request. The headers are checked first (shape, key, timestamp, nonce format); the
 *   signature covers the body's hash, so it is verified over the raw bytes before they are parsed as JSON.
 * - `operator`: the node's own signature (as `node`) or an operator token the node key signed.
 * A route without `auth` is public. After repeated failed authentications an address is refused with 429 before any
 * store lookup (`AuthThrottle`). `registration: true` routes are also limited per address per minute.
 */
export type RouteAuth = "client" | "node" | "operator";

/** Body caps: chat requests carry whole conversations; nothing a node or operator sends comes near 64 KiB. */
export const CLIENT_BODY_LIMIT = 8 * 1024 * 1024;
export const SMALL_BODY_LIMIT = 64 * 1024;

/** Registrations per source address per minute: a sixtieth of `--rate-limit`, at least 10 (10 at the default 600). */
export function registrationsPerMinute(rateLimitPerMinute: number): number {
  return Math.max(10, Math.floor(rateLimitPerMinute / 60));
}

declare module "fastify" {
  interface FastifyContextConfig {
    auth?: RouteAuth;
    registration?: boolean;
  }
  interface FastifyRequest {
    /** Set for `client` routes. */
    caller?: Caller;
    /** The node key whose signature over method, path and raw body checked out (`node`, signed `operator`). */
    signedBy?: string;
    /** The node an operator token (checked) speaks for (`operator` routes without a signature). */
    operatorTokenFor?: string;
    /** Verifies the node signature over the raw body; the JSON body parser calls it before parsing. */
    verifySignature?: (rawBody: string) => void;
    /** A signature that checked out and whose nonce still awaits the replicas' shared check (preValidation). */
    unsharedNonce?: VerifiedNodeRequest;
  }
}

export interface RequestGuardDeps {
  clock: Clock;
  client: ClientAuthDeps;
  node: NodeAuthDeps;
  rateLimitPerMinute: number;
  throttle?: AuthThrottle;
  registrations?: RateLimiter;
}

const TOKEN_REASONS: Record<string, string> = {
  malformed: "malformed operator token (expected tsop1.<node>.<issued>.<expires>.<signature>)",
  bad_signature: "operator token signature does not match",
  expired: "operator token has expired: make a new one with `tessera node operator-token`",
  not_yet_valid: "operator token is issued in the future (check this machine's clock)",
  too_long_lived: "operator token lifetime exceeds 24 h",
};

/** The signed node identity a `node` or signed `operator` route was called with (set by the guard). */
export function signerOf(request: FastifyRequest): string {
  if (request.signedBy === undefined) throw new Error(`route ${request.url} has no node signature: declare config.auth`);
  return request.signedBy;
}

/** The caller of a `client` route (set by the guard). */
export function callerOf(request: FastifyRequest): Caller {
  if (request.caller === undefined) throw new Error(`route ${request.url} has no caller: declare config.auth = "client"`);
  return request.caller;
}

export function installRequestGuard(app: FastifyInstance, deps: RequestGuardDeps): void {
  const throttle = deps.throttle ?? new AuthThrottle();
  const registrations = deps.registrations ?? new RateLimiter();
  const registrationLimit = registrationsPerMinute(deps.rateLimitPerMinute);
  const client: ClientAuthDeps = { ...deps.client, throttle };

  const fail = (request: FastifyRequest, reason: AuthFailure): never => {
    // A request that brings no credential is not a guess; everything else that fails is.
    if (reason !== "missing_header") throttle.recordFailure(request.ip, deps.clock.now());
    throw new TesseraError("unauthorized", NODE_AUTH_REASONS[reason]);
  };

  const expectSignature = (request: FastifyRequest) => {
    const failure = checkNodeAuthHeaders(request.headers, Math.floor(deps.clock.now() / 1000));
    if (failure) fail(request, failure);
    request.verifySignature = (rawBody: string) => {
      request.verifySignature = undefined;
      const result = verifyNodeRequest({ method: request.method, url: request.url, headers: request.headers, rawBody }, deps.node);
      if (!result.ok) fail(request, result.reason);
      else {
        request.signedBy = result.nodeId;
        if (deps.node.shared) request.unsharedNonce = result;
      }
    };
  };

  app.addHook("onRoute", (route) => {
    const auth = route.config?.auth;
    route.bodyLimit ??= auth === "client" ? CLIENT_BODY_LIMIT : SMALL_BODY_LIMIT;
  });

  app.addHook("onRequest", async (request, reply) => {
    const { auth, registration } = request.routeOptions.config;
    if (!auth) return;
    const wait = throttle.retryAfterSeconds(request.ip, deps.clock.now());
    if (wait > 0) {
      throw new TesseraError("rate_limited", `too many failed authentications from this address; retry in ${wait} s`, { retryAfterSeconds: wait });
    }
    if (auth === "client") {
      request.caller = await authenticateClient(request, reply, client);
      return;
    }
    if (auth === "node" || request.headers[AUTH_HEADER] !== undefined) {
      expectSignature(request);
      if (registration) {
        const decision = registrations.take(`register:${request.ip}`, registrationLimit, deps.clock.now());
        if (!decision.allowed) {
          throw new TesseraError("rate_limited", `more than ${registrationLimit} registrations per minute from this address; retry in ${decision.resetSeconds} s`, {
            retryAfterSeconds: decision.resetSeconds,
          });
        }
      }
      return;
    }
    // An operator route without a signature: an operator token, never an API key.
    const header = request.headers.authorization;
    if (header === undefined) {
      throw new TesseraError(
        "unauthorized",
        "node commands need the node's operator: a request signed with the node key (X-Tessera-Auth) or `Authorization: Bearer <operator token>`",
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || !isOperatorToken(match[1]!)) {
      throw new TesseraError(
        "forbidden",
        "API keys cannot manage nodes: sign the request with the node key or send an operator token (`tessera node operator-token`)",
      );
    }
    const result = verifyOperatorToken(match[1]!, Math.floor(deps.clock.now() / 1000));
    if (!result.ok) {
      throttle.recordFailure(request.ip, deps.clock.now());
      throw new TesseraError("unauthorized", TOKEN_REASONS[result.reason] ?? result.reason);
    }
    request.operatorTokenFor = result.nodeId;
  });

  // A signed request whose body was never parsed (none sent): the signature covers the empty body. Then the
  // replicas' shared replay check (the body parser is synchronous, so it waits until here), before any handler.
  app.addHook("preValidation", async (request) => {
    request.verifySignature?.(request.rawBody ?? "");
    const verified = request.unsharedNonce;
    if (verified === undefined) return;
    request.unsharedNonce = undefined;
    if (!(await claimSharedNonce(verified, deps.node))) {
      request.signedBy = undefined;
      fail(request, "replayed_nonce");
    }
  });
}
