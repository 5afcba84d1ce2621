import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AUTH_HEADER, type Receipt, type Signer, TesseraError, receiptBodyOf } from "@tessera/protocol";
import type { AuthThrottle } from "../auth-throttle.js";
import type { Clock } from "../clock.js";
import type { CoordinatorConfig } from "../config.js";
import { authenticateClient, clientAuthDeps } from "../http/client-auth.js";
import { type NodeAuthDeps, NODE_AUTH_REASONS, checkNodeAuthHeaders, verifyNodeRequestEverywhere } from "../http/node-auth.js";
import type { RateLimiter } from "../rate-limiter.js";
import type { ReceiptRecord, Store } from "../store/types.js";

/**
 * Receipts (docs/receipts.md): `GET /api/v1/receipts/:id`, and `/api/v1/cprs/:id` (the seed's name) for the same.
 * Two kinds of reader, told apart by the credential they bring, both checked from the headers alone:
 * - the client who paid: an API key (`Authorization: Bearer …`) whose `key:<id>` is the receipt's `client_key_id`;
 * - the node that served it, or its operator: a request signed (X-Tessera-Auth) by the receipt's `node_id` or
 *   `operator_id`.
 * Anyone else gets the same 404 as for a receipt that does not exist, so the route tells nobody which ids exist.
 * `GET /api/v1/platform-key` is public: the key that countersigns receipts, for clients to pin.
 */
const RECEIPT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Reader = { client: string } | { signer: string };

export interface ReceiptRouteDeps {
  clock: Clock;
  config: Pick<CoordinatorConfig, "open" | "rateLimitPerMinute">;
  store: Pick<Store, "getReceipt" | "findApiKeyByHash" | "touchApiKey">;
  limiter: RateLimiter;
  authThrottle: AuthThrottle;
  nodeAuth: NodeAuthDeps;
  /** The coordinator's key, whose countersignature every receipt carries. */
  platform: Pick<Signer, "publicKeyHex">;
}

/** The caller, from its headers: a node or operator signature when it sent one, else the client API's key check. */
async function readerOf(deps: ReceiptRouteDeps, request: FastifyRequest, reply: FastifyReply): Promise<Reader> {
  const now = deps.clock.now();
  const wait = deps.authThrottle.retryAfterSeconds(request.ip, now);
  if (wait > 0) throw new TesseraError("rate_limited", `too many failed authentications from this address; retry in ${wait} s`, { retryAfterSeconds: wait });
  if (request.headers[AUTH_HEADER] === undefined) {
    const caller = await authenticateClient(request, reply, { ...clientAuthDeps(deps), throttle: deps.authThrottle });
    return { client: caller.ownerId };
  }
  const fail = (reason: keyof typeof NODE_AUTH_REASONS): never => {
    deps.authThrottle.recordFailure(request.ip, now);
    throw new TesseraError("unauthorized", NODE_AUTH_REASONS[reason]);
  };
  const failure = checkNodeAuthHeaders(request.headers, Math.floor(now / 1000));
  if (failure) fail(failure);
  const result = await verifyNodeRequestEverywhere({ method: request.method, url: request.url, headers: request.headers, rawBody: "" }, deps.nodeAuth);
  return result.ok ? { signer: result.nodeId } : fail(result.reason);
}

function mayRead(reader: Reader, r: ReceiptRecord): boolean {
  if ("client" in reader) return reader.client.startsWith("key:") && reader.client === r.client_key_id;
  return reader.signer === r.node_id || reader.signer === r.operator_id;
}

/** The receipt as signed and verified (`tessera receipt verify`): the body, its status and both signatures. */
export function receiptView(r: ReceiptRecord): Receipt {
  return { ...receiptBodyOf(r), status: r.status, platform_signature: r.platform_signature, node_signature: r.node_signature };
}

export function receiptRoutes(app: FastifyInstance, deps: ReceiptRouteDeps): void {
  const getReceipt = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): Promise<Receipt> => {
    const reader = await readerOf(deps, request, reply);
    const id = request.params.id;
    if (!RECEIPT_ID.test(id)) throw new TesseraError("bad_request", "a receipt id is a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", { param: "id" });
    const record = await deps.store.getReceipt(id.toLowerCase());
    if (!record || !mayRead(reader, record)) throw new TesseraError("not_found", `no receipt ${id}`);
    return receiptView(record);
  };
  app.get<{ Params: { id: string } }>("/api/v1/receipts/:id", getReceipt);
  app.get<{ Params: { id: string } }>("/api/v1/cprs/:id", getReceipt);

  // The key the coordinator loaded at start (made on its first start) and signs receipts with.
  app.get("/api/v1/platform-key", async (): Promise<{ platform_key: string }> => ({ platform_key: deps.platform.publicKeyHex }));
}
