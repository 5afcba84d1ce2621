import { randomUUID } from "node:crypto";
import { statSync } from "node:fs";
import WebSocket from "ws";
import { afterEach, describe, expect, it } from "vitest";
import {
  type CoordinatorMessage,
  RECEIPT_VERSION,
  type Receipt,
  type ReceiptBody,
  SESSION_PATH,
  type Signer,
  signReceipt,
  signRequest,
  verifyReceipt,
} from "@tessera/protocol";
import { generateApiToken, hashApiToken } from "../src/api-keys.js";
import { loadOrCreatePlatformKey, platformKeyPath } from "../src/payments/platform-key.js";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(overrides = {}) {
  const t = await testCoordinator(overrides);
  cleanups.push(() => t.close());
  const platform = loadOrCreatePlatformKey(t.config.dataDir);
  const node = newNode();
  const operator = newNode();
  return { t, platform, node, operator };
}

function body(node: string, operator: string, platformKey: string, clientKeyId = "key:key-test", n = 1): ReceiptBody {
  return {
    v: RECEIPT_VERSION,
    receipt_id: randomUUID(),
    job_id: `job-${n}`,
    segment: 1,
    node_id: node,
    operator_id: operator,
    client_key_id: clientKeyId,
    model: "tiny",
    model_sha256: null,
    input_tokens: 7,
    output_tokens: 2,
    price: { input_per_1k: 100, output_per_1k: 400 },
    amount: 2,
    fee: 1,
    reward: 0,
    output_sha256: "ee".repeat(32),
    result_commitment: null,
    completed_at: new Date(Date.UTC(2026, 11, 1, 0, n)).toISOString(),
    platform_key: platformKey,
  };
}

async function issue(t: TestCoordinator, platform: Signer, b: ReceiptBody, nodeSignature: string | null = null): Promise<Receipt> {
  const receipt: Receipt = { ...b, status: "held", platform_signature: signReceipt(platform, b, "platform"), node_signature: nodeSignature };
  const ok = await t.coordinator.ctx.store.settleJob(
    { id: randomUUID(), idempotencyKey: `test:${b.receipt_id}`, kind: "test", jobId: b.job_id, createdAt: new Date(t.clock.now()), entries: [] },
    [{ receipt, holdUntil: new Date(t.clock.now() + 7 * 86_400_000) }],
  );
  expect(ok).toBe(true);
  return receipt;
}

const get = (t: TestCoordinator, url: string, headers: Record<string, string> = {}) => t.coordinator.app.inject({ method: "GET", url, headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("GET /api/v1/receipts/:id and /api/v1/cprs/:id", () => {
  it("the paying client reads its receipt under both names, and it verifies offline", async () => {
    const { t, platform, node, operator } = await setup();
    const b = body(node.id, operator.id, platform.publicKeyHex);
    const receipt = await issue(t, platform, b, signReceipt(node.signer, b, "node"));
    for (const path of ["receipts", "cprs"]) {
      const res = await get(t, `/api/v1/${path}/${b.receipt_id}`, bearer(t.token));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(receipt);
      expect(verifyReceipt(res.json(), { platformKey: platform.publicKeyHex })).toMatchObject({ valid: true, platform: "valid", node: "valid" });
    }
    // Upper-case ids name the same receipt.
    expect((await get(t, `/api/v1/receipts/${b.receipt_id.toUpperCase()}`, bearer(t.token))).statusCode).toBe(200);
  });

  it("the node and its operator read it with a signed request; other keys get the same 404 as a missing receipt", async () => {
    const { t, platform, node, operator } = await setup();
    const b = body(node.id, operator.id, platform.publicKeyHex);
    const receipt = await issue(t, platform, b);
    const url = `/api/v1/receipts/${b.receipt_id}`;
    for (const reader of [node, operator]) {
      const res = await signedInject(t, reader.signer, "GET", url);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual(receipt);
      expect(verifyReceipt(res.json(), { allowUnsignedByNode: true }).valid).toBe(true);
    }
    const stranger = newNode();
    const foreign = await signedInject(t, stranger.signer, "GET", url);
    const missing = await signedInject(t, node.signer, "GET", `/api/v1/receipts/${randomUUID()}`);
    expect(foreign.statusCode).toBe(404);
    expect(missing.statusCode).toBe(404);
    expect(foreign.json().error).toBe("not_found");
    expect(missing.json().error).toBe("not_found");
  });

  it("another client's receipt is a 404, exactly like one that does not exist", async () => {
    const { t, platform, node, operator } = await setup();
    const other = generateApiToken();
    await t.coordinator.ctx.store.createApiKey({ id: "key-other", name: "other", tokenSha256: hashApiToken(other), rateLimitPerMinute: 600, createdAt: new Date(t.clock.now()) });
    const b = body(node.id, operator.id, platform.publicKeyHex);
    await issue(t, platform, b);
    const foreign = await get(t, `/api/v1/receipts/${b.receipt_id}`, bearer(other));
    const missing = await get(t, `/api/v1/receipts/${randomUUID()}`, bearer(other));
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().error).toBe("not_found");
    expect(missing.statusCode).toBe(404);
    expect(foreign.json().error_message.replace(b.receipt_id, "ID")).toBe(missing.json().error_message.replace(/[0-9a-f-]{36}/, "ID"));
  });

  it("refuses callers without credentials, with a bad key or a bad signature (401), before looking at the id", async () => {
    const { t, platform, node, operator } = await setup();
    const b = body(node.id, operator.id, platform.publicKeyHex);
    await issue(t, platform, b);
    const url = `/api/v1/receipts/${b.receipt_id}`;
    expect((await get(t, url)).statusCode).toBe(401);
    expect((await get(t, "/api/v1/receipts/not-a-uuid")).statusCode).toBe(401);
    expect((await get(t, url, bearer("tsk_wrong"))).json()).toMatchObject({ error: "unauthorized" });
    const badSig = await signedInject(t, node.signer, "GET", url, undefined, { signAs: { path: `/api/v1/receipts/${randomUUID()}` } });
    expect(badSig.statusCode).toBe(401);
    const stale = await signedInject(t, node.signer, "GET", url, undefined, { nowSeconds: Math.floor(t.clock.now() / 1000) - 3600 });
    expect(stale.statusCode).toBe(401);
    expect((await get(t, url, { "x-tessera-auth": "v1.garbage", "x-tessera-key": node.id })).statusCode).toBe(401);
    // A replayed signed request is refused too.
    const headers = signRequest(node.signer, { method: "GET", path: url, body: "" }, { nowSeconds: Math.floor(t.clock.now() / 1000) });
    expect((await get(t, url, headers)).statusCode).toBe(200);
    expect((await get(t, url, headers)).statusCode).toBe(401);
  });

  it("a malformed id is a 400 for an authenticated caller", async () => {
    const { t, node } = await setup();
    for (const id of ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g", "%27%20or%201%3D1"]) {
      const res = await get(t, `/api/v1/receipts/${id}`, bearer(t.token));
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe("bad_request");
    }
    expect((await signedInject(t, node.signer, "GET", "/api/v1/cprs/nope")).statusCode).toBe(400);
  });

  it("in open mode an anonymous caller reads no receipt, not even those of keyless jobs", async () => {
    const { t, platform, node, operator } = await setup({ open: true });
    const b = body(node.id, operator.id, platform.publicKeyHex, "open");
    await issue(t, platform, b);
    const res = await get(t, `/api/v1/receipts/${b.receipt_id}`);
    expect(res.statusCode).toBe(404);
    expect((await signedInject(t, node.signer, "GET", `/api/v1/receipts/${b.receipt_id}`)).statusCode).toBe(200);
  });
});

describe("GET /api/v1/platform-key", () => {
  it("is public and names the key made on the coordinator's first start, the one that countersigns receipts", async () => {
    const { t, platform } = await setup();
    const res = await get(t, "/api/v1/platform-key");
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ platform_key: platform.publicKeyHex });
    expect(t.coordinator.ctx.platform.publicKeyHex).toBe(platform.publicKeyHex);
    expect(statSync(platformKeyPath(t.config.dataDir)).mode & 0o777).toBe(0o600);
    // Unknown methods and trailing junk are not the key.
    expect((await t.coordinator.app.inject({ method: "POST", url: "/api/v1/platform-key" })).statusCode).toBe(404);
  });
});

/** A node session opened by hand, answering receipt.sign as the test says. */
async function openSession(baseUrl: string, t: TestCoordinator, signer: Signer, answer: (m: Extract<CoordinatorMessage, { type: "receipt.sign" }>, ws: WebSocket) => void) {
  const headers = signRequest(signer, { method: "GET", path: SESSION_PATH }, { nowSeconds: Math.floor(t.clock.now() / 1000) });
  const ws = new WebSocket(baseUrl.replace(/^http/, "ws") + SESSION_PATH, { headers });
  // Listening before the session is open: the coordinator offers receipts as soon as it accepts the session.
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as CoordinatorMessage;
    if (msg.type === "receipt.sign") answer(msg, ws);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  cleanups.push(async () => void ws.close());
  return ws;
}

async function waitFor(what: string, predicate: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("node signatures over the session", () => {
  it("a node that connects is offered its unsigned receipts and its signatures are stored; a bad one is not", async () => {
    const { t, platform, node, operator } = await setup();
    await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
    const baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
    expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    const good = await issue(t, platform, body(node.id, operator.id, platform.publicKeyHex, "key:key-test", 1));
    const bad = await issue(t, platform, body(node.id, operator.id, platform.publicKeyHex, "key:key-test", 2));
    const refused = await issue(t, platform, body(node.id, operator.id, platform.publicKeyHex, "key:key-test", 3));
    const offered: string[] = [];
    await openSession(baseUrl, t, node.signer, (m, ws) => {
      offered.push(m.receipt.receipt_id);
      if (m.receipt.receipt_id === refused.receipt_id) ws.send(JSON.stringify({ type: "receipt.refused", receipt_id: m.receipt.receipt_id, reason: "job_not_served: test" }));
      else {
        const signed = m.receipt.receipt_id === bad.receipt_id ? signReceipt(node.signer, { ...m.receipt, amount: 1000 }, "node") : signReceipt(node.signer, m.receipt, "node");
        ws.send(JSON.stringify({ type: "receipt.signed", receipt_id: m.receipt.receipt_id, signature: signed }));
      }
    });
    const store = t.coordinator.ctx.store;
    await waitFor("the good receipt signed", async () => (await store.getReceipt(good.receipt_id))?.node_signature != null);
    await waitFor("three answers counted", async () => (await t.coordinator.ctx.metrics.registry.getSingleMetricAsString("tessera_receipt_signatures_total")).includes('outcome="refused"'));
    expect(offered).toEqual([good.receipt_id, bad.receipt_id, refused.receipt_id]);
    expect((await store.getReceipt(bad.receipt_id))!.node_signature).toBeNull();
    expect((await store.getReceipt(refused.receipt_id))!.node_signature).toBeNull();
    const res = await get(t, `/api/v1/receipts/${good.receipt_id}`, bearer(t.token));
    expect(verifyReceipt(res.json(), { platformKey: platform.publicKeyHex })).toMatchObject({ valid: true, node: "valid" });
    const metrics = await t.coordinator.ctx.metrics.registry.getSingleMetricAsString("tessera_receipt_signatures_total");
    expect(metrics).toContain('tessera_receipt_signatures_total{outcome="signed"} 1');
    expect(metrics).toContain('tessera_receipt_signatures_total{outcome="invalid"} 1');
    expect(metrics).toContain('tessera_receipt_signatures_total{outcome="refused"} 1');

    // A receipt issued while the node is connected is asked for at once.
    const later = await issue(t, platform, body(node.id, operator.id, platform.publicKeyHex, "key:key-test", 4));
    t.coordinator.ctx.receiptSignatures.request(later);
    await waitFor("the later receipt signed", async () => (await store.getReceipt(later.receipt_id))?.node_signature != null);
  });
});
