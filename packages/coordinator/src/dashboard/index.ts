import type { FastifyInstance } from "fastify";
import type { CoordinatorContext } from "../context.js";
import { type DashboardDeps, dashboardDepsOf } from "./deps.js";
import { adminRoutes } from "./admin-routes.js";
import { jobEventRoutes } from "./job-events-routes.js";
import { keyRoutes } from "./key-routes.js";
import { NetworkHistory } from "./network-history.js";
import { networkRoutes } from "./network-routes.js";
import { operatorRoutes } from "./operator-routes.js";
import { proxyRoutes } from "./proxy-routes.js";
import { SessionGate } from "./session-gate.js";
import { sessionRoutes } from "./session-routes.js";
import { DashboardSessions } from "./sessions.js";
import { staticRoutes } from "./static-routes.js";

export type { DashboardDeps } from "./deps.js";

/** The web dashboard: its static build at `/`, and its API under `/dashboard/api/` (design: packages/dashboard/design.md). */
export function dashboardRoutes(app: FastifyInstance, ctx: CoordinatorContext): void {
  mountDashboard(app, dashboardDepsOf(ctx));
}

export function mountDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  const sessions = new DashboardSessions(deps.clock);
  const gate = new SessionGate(sessions);
  // Workaround (light-my-request 6.8.1): an injected request's null socket has no setNoDelay(), which the public
  // event-stream routes call; the proxy runs them through inject(). Real sockets are untouched.
  app.addHook("onRequest", async (_request, reply) => {
    const socket = reply.raw.socket as { setNoDelay?: unknown } | null;
    if (socket && typeof socket.setNoDelay !== "function") socket.setNoDelay = () => socket;
  });
  staticRoutes(app, deps.staticDir);
  sessionRoutes(app, deps, sessions, gate);
  keyRoutes(app, deps, sessions, gate);
  networkRoutes(app, deps, new NetworkHistory(deps.network, deps.clock));
  jobEventRoutes(app, deps, gate);
  operatorRoutes(app, deps, gate);
  adminRoutes(app, deps, gate);
  proxyRoutes(app, gate);
}
