import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, createOperatorToken, signRequest } from "@tessera/protocol";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";

/**
 * Generated hostile input at every endpoint, through inject(): random and deep JSON, wrong types, huge strings, NULs,
 * non-JSON, odd content types and query strings, with each kind of credential (none, a wrong or a valid API key, a
 * correct node signature over the bad body, a bad signature, an operator token). Whatever comes in, the answer is
 * below 500, a refusal carries a code from the protocol's closed set, and a refused request writes no row.
 */

let t: TestCoordinator;
let node: ReturnType<typeof newNode>;
let db: BetterSqlite3.Database;

beforeAll(async () => {
  t = await testCoordinator({ rateLimitPerMinute: 1_000_000 });
  node = newNode();
  expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
  db = new BetterSqlite3(join(t.config.dataDir, "coordinator.db"), { readonly: true, fileMustExist: true });
});

afterAll(async () => {
  db?.close();
  await t?.close();
});

/** Every row of every table, as one string: a refused request must leave it as it was. */
function snapshot(): string {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
  return tables
    .filter(({ name }) => name !== "api_keys") // a valid key's last_used_at moves on any authenticated request
    .map(({ name }) => `${name}:${JSON.stringify(db.prepare(`SELECT * FROM "${name}"`).raw().all())}`)
    .join("\n");
}

type Credential = "none" | "wrong-key" | "api-key" | "node-signed" | "bad-signature" | "operator-token";

interface Endpoint {
  method: "GET" | "POST";
  path: (id: string) => string;
}

const ENDPOINTS: Endpoint[] = [
  { method: "GET", path: () => "/healthz" },
  { method: "GET", path: () => "/metrics" },
  { method: "POST", path: () => "/api/v1/nodes/register" },
  { method: "POST", path: () => "/api/v1/nodes/heartbeat" },
  { method: "GET", path: (id) => `/api/v1/nodes/${id}/status` },
  { method: "POST", path: (id) => `/api/v1/nodes/${id}/commands` },
  { method: "GET", path: (id) => `/api/v1/nodes/${id}/commands` },
  { method: "POST", path: (id) => `/api/v1/nodes/${id}/commands/${id.slice(0, 8)}/report` },
  { method: "POST", path: () => "/api/v1/jobs" },
  { method: "GET", path: (id) => `/api/v1/jobs/${id}` },
  { method: "GET", path: (id) => `/api/v1/jobs/${id}/stream` },
  { method: "GET", path: () => "/api/v1/jobs" },
  { method: "GET", path: () => "/api/v1/models" },
  { method: "POST", path: () => "/v1/chat/completions" },
  { method: "POST", path: () => "/v1/completions" },
  { method: "POST", path: () => "/v1/embeddings" },
  { method: "GET", path: () => "/v1/models" },
  { method: "POST", path: (id) => `/api/v1/nowhere/${id}` },
];

const nasty = fc.constantFrom("", "\u0000", "tiny\u0000", "<img src=x onerror=alert(1)>", "' OR 1=1 --", "../../etc/passwd", "%00", "\u202e", "x".repeat(300), "😀");
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), nasty);
const wrongTypes = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(text, fc.integer(), { maxKeys: 3 }), text);

/** Bodies near a valid request: the right field names with wrong or hostile values. */
const nearValid = fc.oneof(
  fc.record({ model: fc.oneof(text, wrongTypes), input: fc.oneof(text, wrongTypes, fc.array(fc.oneof(text, wrongTypes, fc.array(fc.oneof(fc.integer(), fc.double()), { maxLength: 3 })), { maxLength: 3 })), encoding_format: fc.oneof(text, fc.constantFrom("float", "base64")), dimensions: wrongTypes }, { requiredKeys: [] }),
  fc.record({ model: fc.oneof(text, wrongTypes), prompt: fc.oneof(text, wrongTypes, fc.array(fc.oneof(text, wrongTypes), { maxLength: 3 })), messages: fc.oneof(wrongTypes, fc.array(fc.record({ role: fc.oneof(text, fc.constant("user")), content: fc.oneof(text, wrongTypes) }), { maxLength: 3 })), max_tokens: wrongTypes, stream: wrongTypes }, { requiredKeys: [] }),
  fc.record({ type: fc.constantFrom("register", "heartbeat", "model_install", "x"), public_key: fc.oneof(text, wrongTypes), models: fc.oneof(wrongTypes, fc.array(fc.record({ id: text, backend: text }), { maxLength: 3 })), hardware: wrongTypes, gpus: wrongTypes, loaded_models: fc.array(text, { maxLength: 3 }), active_jobs: wrongTypes, max_concurrency: wrongTypes, model: text }, { requiredKeys: [] }),
  fc.record({ status: fc.oneof(fc.constantFrom("running", "succeeded", "failed"), text), progress: wrongTypes, detail: text, error: text, error_message: text, completed_bytes: wrongTypes }, { requiredKeys: [] }),
);

const body = fc.oneof(
  { weight: 3, arbitrary: fc.json({ maxDepth: 4 }) },
  { weight: 3, arbitrary: nearValid.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.integer({ min: 65, max: 20_000 }).map((d) => "[".repeat(d) + "]".repeat(d)) },
  { weight: 1, arbitrary: fc.integer({ min: 65, max: 5_000 }).map((d) => '{"a":'.repeat(d) + "1" + "}".repeat(d)) },
  { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 200_000 }).map((n) => JSON.stringify({ model: "m", messages: [{ role: "user", content: "x".repeat(n) }] })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((s) => `${s}\u0000${s}`) },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constant("") },
);

const query = fc.oneof(
  fc.constant(""),
  fc.dictionary(fc.constantFrom("limit", "status", "since", "model", "x", "__proto__"), fc.oneof(text, fc.integer().map(String)), { maxKeys: 4 }).map((q) =>
    Object.keys(q).length === 0 ? "" : `?${Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}`,
  ),
  fc.string({ maxLength: 40 }).map((s) => `?${encodeURIComponent(s)}&limit=1&limit=2`),
);

const CODES = new Set(Object.keys(ERROR_CODES));
let addressCounter = 0;

async function send(endpoint: Endpoint, idKind: number, randomId: string, q: string, payload: string, contentType: string | undefined, credential: Credential) {
  const id = [node.id, randomId, "0".repeat(64), encodeURIComponent(randomId)][idKind]!;
  const url = endpoint.path(id) + q;
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers["content-type"] = contentType;
  const now = Math.floor(t.clock.now() / 1000);
  const hasBody = endpoint.method === "POST";
  switch (credential) {
    case "wrong-key":
      headers.authorization = "Bearer tsk_wrong";
      break;
    case "api-key":
      headers.authorization = `Bearer ${t.token}`;
      break;
    case "node-signed":
      Object.assign(headers, signRequest(node.signer, { method: endpoint.method, path: url, body: hasBody ? payload : "" }, { nowSeconds: now }));
      break;
    case "bad-signature":
      Object.assign(headers, signRequest(node.signer, { method: endpoint.method, path: url, body: `${payload}x` }, { nowSeconds: now }));
      break;
    case "operator-token":
      headers.authorization = `Bearer ${createOperatorToken(node.signer, { nowSeconds: now })}`;
      break;
  }
  // A fresh address per request: the per-address throttles are tested on their own, here they would hide the routes.
  addressCounter++;
  const remoteAddress = `10.${(addressCounter >> 16) & 255}.${(addressCounter >> 8) & 255}.${addressCounter & 255}`;
  return t.coordinator.app.inject({ method: endpoint.method, url, headers, remoteAddress, ...(hasBody ? { payload } : {}) });
}

describe("every endpoint under generated hostile input", () => {
  it("answers below 500, refuses with a stable code, and writes nothing for a refused request", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ENDPOINTS),
        fc.integer({ min: 0, max: 3 }),
        fc.string({ minLength: 1, maxLength: 70 }),
        query,
        body,
        fc.constantFrom<string | undefined>("application/json", "application/json", "application/json; charset=utf-8", "text/plain", undefined),
        fc.constantFrom<Credential>("none", "wrong-key", "api-key", "api-key", "node-signed", "node-signed", "bad-signature", "operator-token"),
        async (endpoint, idKind, randomId, q, payload, contentType, credential) => {
          const before = snapshot();
          const res = await send(endpoint, idKind, randomId, q, payload, contentType, credential);
          expect(res.statusCode, `${endpoint.method} ${endpoint.path("…")}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
          if (res.statusCode >= 400) {
            const parsed = res.json() as { error: string | { code: string } };
            const code = typeof parsed.error === "string" ? parsed.error : parsed.error.code;
            expect(CODES.has(code), `unknown code ${code}`).toBe(true);
            expect(snapshot(), `${endpoint.method} ${endpoint.path("…")} was refused (${res.statusCode}) but wrote a row`).toBe(before);
          }
        },
      ),
      { numRuns: 1000 },
    );
  }, 120_000);
});
