import type { FastifyRequest } from "fastify";
import { DASHBOARD_CSRF_HEADER, DASHBOARD_SESSION_COOKIE, TesseraError } from "@tessera/protocol";
import { cookieValue } from "./cookies.js";
import { csrfMatches, type DashboardSession, type DashboardSessions } from "./sessions.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Reads the session from the cookie and guards state-changing requests against cross-site forgery, three ways:
 * the cookie is SameSite=Strict; a browser's `Origin` (and `Sec-Fetch-Site`), when sent, must be this host; and a
 * request made with a session must repeat the session's CSRF token in `x-tessera-csrf`, which another site's page
 * cannot read.
 */
/** Refuses a request whose session is not the coordinator's owner's (admin-routes.ts builds it from a gate). */
export type RequireAdmin = (request: FastifyRequest) => void;

export class SessionGate {
  constructor(private readonly sessions: DashboardSessions) {}

  sessionOf(request: FastifyRequest): DashboardSession | undefined {
    return this.sessions.get(cookieValue(request.headers.cookie, DASHBOARD_SESSION_COOKIE));
  }

  /** The caller's session, or `unauthorized`; for a state-changing method also the CSRF checks. */
  require(request: FastifyRequest): DashboardSession {
    const session = this.sessionOf(request);
    if (!session) throw new TesseraError("unauthorized", "not signed in to the dashboard (or the session expired): sign in again");
    this.checkWrite(request, session);
    return session;
  }

  /** For POST, PUT, PATCH and DELETE: same-origin, and with a session, the session's CSRF token. */
  checkWrite(request: FastifyRequest, session: DashboardSession | undefined): void {
    if (SAFE_METHODS.has(request.method)) return;
    const site = request.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      throw new TesseraError("forbidden", `cross-site request refused (Sec-Fetch-Site: ${String(site)})`);
    }
    const origin = request.headers.origin;
    if (origin !== undefined && hostOf(origin) !== request.headers.host) {
      throw new TesseraError("forbidden", `cross-origin request refused (Origin ${origin} is not this coordinator)`);
    }
    if (session === undefined) return;
    const presented = request.headers[DASHBOARD_CSRF_HEADER];
    if (!csrfMatches(session, typeof presented === "string" ? presented : undefined)) {
      throw new TesseraError("forbidden", `missing or wrong CSRF token: send the session's csrf_token in ${DASHBOARD_CSRF_HEADER}`);
    }
  }
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}
