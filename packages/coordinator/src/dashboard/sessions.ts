import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Clock } from "../clock.js";

/** How long a dashboard session lasts from sign-in (no sliding renewal: sign in again after). */
export const SESSION_TTL_MS = 12 * 60 * 60_000;
/** Sessions held at once; past it the oldest goes, so guest sign-ins cannot grow memory without bound. */
export const MAX_SESSIONS = 10_000;

export interface DashboardSession {
  id: string;
  /** Repeated by the page in a header on every state-changing request; never in a cookie. */
  csrf: string;
  kind: "client" | "guest" | "operator" | "admin";
  /** An operator session: the operator, and the node whose key signed the login link. */
  operator?: { id: string; nodeId: string };
  /** The API key a client session acts as: its token, held only in this process's memory, to call the public API. */
  key?: { id: string; name: string; token: string };
  /** Keys this session made: it may list and revoke them (and, always, the key it signed in with). */
  createdKeys: Set<string>;
  expiresAt: number;
}

/**
 * Dashboard sessions, in memory: a restart signs everyone out, which is the safe side for a process that holds
 * API tokens. Ids and CSRF tokens are 256-bit random values.
 */
export class DashboardSessions {
  private readonly byId = new Map<string, DashboardSession>();

  constructor(private readonly clock: Clock, private readonly random: (bytes: number) => Buffer = randomBytes) {}

  create(kind: DashboardSession["kind"], key?: DashboardSession["key"], operator?: DashboardSession["operator"]): DashboardSession {
    while (this.byId.size >= MAX_SESSIONS) this.byId.delete(this.byId.keys().next().value!);
    const session: DashboardSession = {
      id: this.random(32).toString("base64url"),
      csrf: this.random(32).toString("base64url"),
      kind,
      ...(key ? { key } : {}),
      ...(operator ? { operator } : {}),
      createdKeys: new Set(),
      expiresAt: this.clock.now() + SESSION_TTL_MS,
    };
    this.byId.set(session.id, session);
    return session;
  }

  /** The live session with this id, or undefined (unknown or expired; an expired one is dropped). */
  get(id: string | undefined): DashboardSession | undefined {
    if (id === undefined) return undefined;
    const session = this.byId.get(id);
    if (session && session.expiresAt <= this.clock.now()) {
      this.byId.delete(id);
      return undefined;
    }
    return session;
  }

  end(id: string): void {
    this.byId.delete(id);
  }

  /** Ends every session acting as this key (it was revoked). */
  endForKey(keyId: string): void {
    for (const [id, s] of this.byId) if (s.key?.id === keyId) this.byId.delete(id);
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: DashboardSession, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
