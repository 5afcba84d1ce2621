import { randomBytes, randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { type DashboardJoinToken, DashboardJoinTokenCreate, type DashboardJoinTokenCreated, JOIN_TOKEN_PREFIX, TesseraError, hashJoinToken } from "@tessera/protocol";
import type { JoinTokenRecord } from "../store/types.js";
import type { DashboardDeps } from "./deps.js";
import type { RequireAdmin } from "./session-gate.js";

export function joinTokenView(t: JoinTokenRecord, now: number): DashboardJoinToken {
  const state = t.revokedAt ? "revoked" : t.uses >= t.maxUses ? "used up" : t.expiresAt.getTime() <= now ? "expired" : "valid";
  return { id: t.id, state, uses: t.uses, max_uses: t.maxUses, note: t.note, created_at: t.createdAt.toISOString(), expires_at: t.expiresAt.toISOString() };
}

/**
 * Join tokens, the owner's only: a token admits a new operator when admission is `token` (trust/admission.ts), so
 * making one is the owner's decision, as `tessera coordinator join-tokens create|revoke` (run against the
 * coordinator's store) is. An operator session cannot make them: that would let any admitted operator admit others.
 * The list comes with `GET /dashboard/api/admin`; the token is in the creation's answer only (the store keeps its hash).
 */
export function joinTokenRoutes(app: FastifyInstance, deps: DashboardDeps, requireAdmin: RequireAdmin): void {
  app.post("/dashboard/api/admin/join-tokens", async (request, reply): Promise<DashboardJoinTokenCreated> => {
    requireAdmin(request);
    const body = DashboardJoinTokenCreate.parse(request.body ?? {});
    const now = deps.clock.now();
    const token = JOIN_TOKEN_PREFIX + randomBytes(24).toString("base64url");
    const created = await deps.admin.createJoinToken({
      id: randomUUID(),
      tokenSha256: hashJoinToken(token),
      note: body.note ?? null,
      maxUses: body.uses,
      createdAt: new Date(now),
      expiresAt: new Date(now + body.expires_in_seconds * 1000),
    });
    reply.code(201).header("cache-control", "no-store");
    return { ...joinTokenView(created, now), token };
  });

  app.delete<{ Params: { id: string } }>("/dashboard/api/admin/join-tokens/:id", async (request, reply) => {
    requireAdmin(request);
    const id = request.params.id;
    // Whole ids only here (the CLI also takes a prefix): a page always has the id it shows.
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new TesseraError("bad_request", "give the join token's id as the Admin page lists it");
    if (!(await deps.admin.revokeJoinToken(id, new Date(deps.clock.now())))) throw new TesseraError("not_found", `no valid join token ${id}`);
    return reply.code(204).send();
  });
}
