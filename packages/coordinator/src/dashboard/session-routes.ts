import type { FastifyInstance, FastifyRequest } from "fastify";
import { DashboardSignIn, type DashboardSessionView, TesseraError } from "@tessera/protocol";
import { hashApiToken } from "../api-keys.js";
import type { DashboardDeps } from "./deps.js";
import { sessionCookie } from "./cookies.js";
import { LoginLinks } from "./login-links.js";
import { SIGN_INS_PER_MINUTE, limitPerAddress } from "./per-address-limit.js";
import type { SessionGate } from "./session-gate.js";
import { type DashboardSession, type DashboardSessions, SESSION_TTL_MS } from "./sessions.js";

export function viewOfSession(session: DashboardSession | undefined, open: boolean): DashboardSessionView {
  if (!session) return { signed_in: false, open };
  return {
    signed_in: true,
    open,
    kind: session.kind,
    ...(session.key ? { key: { id: session.key.id, name: session.key.name } } : {}),
    ...(session.operator ? { operator: { id: session.operator.id, node_id: session.operator.nodeId } } : {}),
    csrf_token: session.csrf,
    expires_at: new Date(session.expiresAt).toISOString(),
  };
}

/**
 * Whether the session cookie is `Secure`: TLS reached this process directly, or the owner said browsers reach it
 * over https (`--secure-cookies always`, behind a TLS-terminating proxy). `X-Forwarded-Proto` is not trusted: any
 * client can send it.
 */
function secureCookie(deps: DashboardDeps, request: FastifyRequest): boolean {
  return deps.secureCookies === "always" || request.protocol === "https";
}

/**
 * `GET /dashboard/api/session` (always 200: who the page is), `POST` (sign in with an API key, a login link, or as a
 * guest on an open network) and `DELETE` (sign out). A wrong key counts as a failed authentication from the caller's address,
 * like a wrong bearer token on the API, and the same throttle refuses an address that keeps guessing.
 */
export function sessionRoutes(app: FastifyInstance, deps: DashboardDeps, sessions: DashboardSessions, gate: SessionGate): void {
  const links = new LoginLinks(deps.clock, deps.usedOnce);
  // Annotated so that TypeScript narrows after a call (assertion-style control flow needs an explicit type).
  const refuse: (request: FastifyRequest, message: string) => never = (request, message) => {
    deps.throttle.recordFailure(request.ip, deps.clock.now());
    throw new TesseraError("unauthorized", message);
  };
  app.get("/dashboard/api/session", async (request, reply): Promise<DashboardSessionView> => {
    reply.header("cache-control", "no-store");
    return viewOfSession(gate.sessionOf(request), deps.open);
  });

  app.post("/dashboard/api/session", async (request, reply): Promise<DashboardSessionView> => {
    gate.checkWrite(request, undefined);
    const wait = deps.throttle.retryAfterSeconds(request.ip, deps.clock.now());
    if (wait > 0) throw new TesseraError("rate_limited", `too many failed authentications from this address; retry in ${wait} s`, { retryAfterSeconds: wait });
    limitPerAddress(deps, request, "sign-in", SIGN_INS_PER_MINUTE);
    const body = DashboardSignIn.parse(request.body ?? {});
    let session: DashboardSession;
    if ("login_link" in body) {
      const link = await links.redeem(body.login_link.trim());
      if (!link.ok) refuse(request, link.message);
      const nodeId = link.nodeId;
      if (nodeId === deps.platformKey) {
        session = sessions.create("admin");
      } else {
        const operator = await deps.operatorOfNode(nodeId);
        if (operator === undefined) refuse(request, "the login link's node is not known to this coordinator: register it first");
        session = sessions.create("operator", undefined, { id: operator, nodeId });
      }
    } else if ("guest" in body) {
      if (!deps.open) throw new TesseraError("forbidden", "this network needs an API key: sign in with one (`tessera coordinator keys create`)");
      session = sessions.create("guest");
    } else {
      const key = await deps.apiKeys.findApiKeyByHash(hashApiToken(body.api_key.trim()));
      if (!key) refuse(request, "unknown or revoked API key");
      session = sessions.create("client", { id: key.id, name: key.name, token: body.api_key.trim() });
    }
    // A sign-in replaces whatever session the browser had.
    const previous = gate.sessionOf(request);
    if (previous) sessions.end(previous.id);
    reply.header("set-cookie", sessionCookie(session.id, SESSION_TTL_MS / 1000, secureCookie(deps, request)));
    reply.header("cache-control", "no-store");
    return viewOfSession(session, deps.open);
  });

  app.delete("/dashboard/api/session", async (request, reply) => {
    const session = gate.require(request);
    sessions.end(session.id);
    reply.header("set-cookie", sessionCookie("", 0, secureCookie(deps, request)));
    return reply.code(204).send();
  });
}
