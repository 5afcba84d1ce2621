import { DASHBOARD_LOGIN_LINK_MAX_TTL_SECONDS, OPERATOR_TOKEN_PREFIX, sha256Hex, verifyOperatorToken } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { SharedNonceCheck } from "../http/node-auth.js";

const USED = "this login link was used already: make a new one with `tessera dashboard login`";

const REASONS: Record<string, string> = {
  malformed: "not a login link: make one with `tessera dashboard login`",
  bad_signature: "the login link's signature does not match its node",
  expired: "the login link has expired: make a new one with `tessera dashboard login`",
  not_yet_valid: "the login link is issued in the future (check the clock of the machine that made it)",
  too_long_lived: "the login link lives too long",
};

/**
 * Operator sign-in: `tessera dashboard login` signs a short operator token (operator-token.ts: node key, issued and
 * expiry times) and prints it in a link. Redeeming checks the signature and the times, refuses a token that lives
 * longer than a login link may (an operator token made for node commands is not a login link), and accepts each
 * token once: it is remembered until it expires, here and, with several replicas, in their shared record.
 */
export class LoginLinks {
  private readonly used = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    /** The replicas' shared record of used one-time tokens; undefined where this process is the whole cluster. */
    private readonly usedOnce?: SharedNonceCheck,
  ) {}

  async redeem(token: string): Promise<{ ok: true; nodeId: string } | { ok: false; message: string }> {
    const nowSeconds = Math.floor(this.clock.now() / 1000);
    for (const [t, expires] of this.used) if (expires <= nowSeconds) this.used.delete(t);
    const result = verifyOperatorToken(token, nowSeconds);
    if (!result.ok) return { ok: false, message: REASONS[result.reason] ?? result.reason };
    const [prefix, , issued, expires] = token.split(".");
    const lifetime = Number(expires) - Number(issued);
    if (prefix !== OPERATOR_TOKEN_PREFIX || !(lifetime > 0 && lifetime <= DASHBOARD_LOGIN_LINK_MAX_TTL_SECONDS)) {
      return { ok: false, message: `a login link lives at most ${DASHBOARD_LOGIN_LINK_MAX_TTL_SECONDS / 60} minutes: make one with \`tessera dashboard login\`` };
    }
    if (this.used.has(token)) return { ok: false, message: USED };
    this.used.set(token, Number(expires));
    // Keyed by the link's node and a hash of the whole link (its signature makes it unique), kept past its expiry.
    if (this.usedOnce && !(await this.usedOnce.claim(result.nodeId, `login-link:${sha256Hex(token)}`, Number(expires)))) return { ok: false, message: USED };
    return { ok: true, nodeId: result.nodeId };
  }
}
