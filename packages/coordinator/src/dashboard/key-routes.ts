import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { DashboardKeyCreate, type DashboardKeyCreated, type DashboardKeyView, TesseraError } from "@tessera/protocol";
import { generateApiToken, hashApiToken } from "../api-keys.js";
import type { ApiKeyRecord } from "../store/types.js";
import type { DashboardDeps } from "./deps.js";
import { KEYS_PER_MINUTE, limitPerAddress } from "./per-address-limit.js";
import type { SessionGate } from "./session-gate.js";
import type { DashboardSession, DashboardSessions } from "./sessions.js";

function viewOf(key: ApiKeyRecord, session: DashboardSession): DashboardKeyView {
  return {
    id: key.id,
    name: key.name,
    created_at: key.createdAt.toISOString(),
    last_used_at: key.lastUsedAt?.toISOString() ?? null,
    rate_limit_per_minute: key.rateLimitPerMinute,
    current: session.key?.id === key.id,
  };
}

/** The keys a session may see and revoke: the one it signed in with, and those it made. Holding a token is the right to it. */
function visibleTo(session: DashboardSession, key: ApiKeyRecord): boolean {
  return key.revokedAt === null && (session.key?.id === key.id || session.createdKeys.has(key.id));
}

/**
 * `/dashboard/api/keys`: list, create (the token is in that one answer and nowhere else: the store keeps its hash),
 * revoke. Keys are self-service only on an open network, where a key is an identity for credits and limits rather
 * than a permission; a closed network's owner makes them with `tessera coordinator keys create`.
 */
export function keyRoutes(app: FastifyInstance, deps: DashboardDeps, sessions: DashboardSessions, gate: SessionGate): void {
  app.get("/dashboard/api/keys", async (request): Promise<{ keys: DashboardKeyView[] }> => {
    const session = gate.require(request);
    const keys = (await deps.apiKeys.listApiKeys()).filter((k) => visibleTo(session, k));
    return { keys: keys.map((k) => viewOf(k, session)) };
  });

  app.post("/dashboard/api/keys", async (request, reply): Promise<DashboardKeyCreated> => {
    const session = gate.require(request);
    if (!deps.open) {
      throw new TesseraError("forbidden", "this network's API keys are made by its owner (`tessera coordinator keys create`), not from the dashboard");
    }
    const body = DashboardKeyCreate.parse(request.body ?? {});
    limitPerAddress(deps, request, "key", KEYS_PER_MINUTE);
    const token = generateApiToken();
    const key = await deps.apiKeys.createApiKey({
      id: randomUUID(),
      name: body.name,
      tokenSha256: hashApiToken(token),
      rateLimitPerMinute: deps.defaultRateLimitPerMinute,
      createdAt: new Date(deps.clock.now()),
    });
    session.createdKeys.add(key.id);
    reply.code(201).header("cache-control", "no-store");
    return { ...viewOf(key, session), token };
  });

  app.delete<{ Params: { id: string } }>("/dashboard/api/keys/:id", async (request, reply) => {
    const session = gate.require(request);
    const key = (await deps.apiKeys.listApiKeys()).find((k) => k.id === request.params.id);
    if (!key || !visibleTo(session, key)) throw new TesseraError("not_found", `no API key ${request.params.id} in this session`);
    await deps.apiKeys.revokeApiKey(key.id, new Date(deps.clock.now()));
    session.createdKeys.delete(key.id);
    // Every session acting as the key ends with it, this one included.
    sessions.endForKey(key.id);
    return reply.code(204).send();
  });
}
