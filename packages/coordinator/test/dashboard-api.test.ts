import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { SseDecoder, createOperatorToken, hashJoinToken } from "@tessera/protocol";
import { loadCoordinatorConfig } from "../src/config.js";
import { dashboardDepsOf } from "../src/dashboard/deps.js";
import { mountDashboard } from "../src/dashboard/index.js";
import { installErrorHandling } from "../src/http/errors.js";
import { installJsonBody } from "../src/http/json-body.js";
import { createLogger } from "../src/logger.js";
import { type ScriptedNetwork, newNode, registration, scriptedNetwork, signedInject, streamNativeJob } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";
import { seedReceipt } from "../src/store/payout-queries.test-support.js";

/**
 * The dashboard's API over real HTTP (cookies travel as a browser sends them): sign-in, the session cookie, CSRF,
 * self-service keys, the public API called through the session (streaming included), the network figures, and
 * the static build. Bad input and missing sessions get the same stable error codes as every other route.
 */
let net: ScriptedNetwork;
let extraNode: ScriptedNode | undefined;
afterEach(async () => {
  await extraNode?.close();
  extraNode = undefined;
  await net?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: () => any;
}

async function call(method: string, path: string, options: { body?: unknown; cookie?: string; csrf?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.cookie) headers.cookie = options.cookie;
  if (options.csrf) headers["x-tessera-csrf"] = options.csrf;
  const res = await fetch(net.baseUrl + path, { method, headers, ...(options.body === undefined ? {} : { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) }) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

function expectError(res: Answer, status: number, code: string) {
  expect({ status: res.status, error: res.json().error }).toEqual({ status, error: code });
  expect(typeof res.json().error_message).toBe("string");
}

async function signIn(apiKey: string): Promise<{ cookie: string; csrf: string }> {
  const res = await call("POST", "/dashboard/api/session", { body: { api_key: apiKey } });
  expect(res.status).toBe(200);
  const setCookie = res.headers.get("set-cookie")!;
  return { cookie: setCookie.split(";")[0]!, csrf: res.json().csrf_token };
}

describe("dashboard sign-in", () => {
  it("signs in with an API key into an HttpOnly, SameSite=Strict cookie, and refuses bad sign-ins", async () => {
    net = await scriptedNetwork(0);
    expect((await call("GET", "/dashboard/api/session")).json()).toEqual({ signed_in: false, open: false });

    expectError(await call("POST", "/dashboard/api/session", { body: { api_key: "tsk_not-a-key" } }), 401, "unauthorized");
    expectError(await call("POST", "/dashboard/api/session", { body: { password: "x" } }), 400, "bad_request");
    expectError(await call("POST", "/dashboard/api/session", { body: "{not json" }), 400, "bad_request");
    expectError(await call("POST", "/dashboard/api/session", { body: { guest: true } }), 403, "forbidden");
    expectError(await call("POST", "/dashboard/api/session", { body: { api_key: net.t.token }, headers: { origin: "https://evil.example" } }), 403, "forbidden");
    expectError(await call("POST", "/dashboard/api/session", { body: { api_key: net.t.token }, headers: { "sec-fetch-site": "cross-site" } }), 403, "forbidden");

    const res = await call("POST", "/dashboard/api/session", { body: { api_key: net.t.token } });
    expect(res.status).toBe(200);
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^tessera_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    const view = res.json();
    expect(view).toMatchObject({ signed_in: true, kind: "client", key: { id: "key-test", name: "test" } });
    expect(view.csrf_token).toMatch(/^[\w-]{43}$/);
    expect(JSON.stringify(view)).not.toContain(net.t.token);

    const session = cookie.split(";")[0]!;
    expect((await call("GET", "/dashboard/api/session", { cookie: session })).json()).toMatchObject({ signed_in: true, csrf_token: view.csrf_token });
    expectError(await call("GET", "/dashboard/api/session/../keys", { cookie: "tessera_session=forged" }), 401, "unauthorized");

    // Signing out needs the CSRF token; then the cookie is cleared and the session is gone.
    expectError(await call("DELETE", "/dashboard/api/session", { cookie: session }), 403, "forbidden");
    const out = await call("DELETE", "/dashboard/api/session", { cookie: session, csrf: view.csrf_token });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toContain("Max-Age=0");
    expect((await call("GET", "/dashboard/api/session", { cookie: session })).json().signed_in).toBe(false);
  });

  it("throttles an address that keeps guessing keys", async () => {
    net = await scriptedNetwork(0);
    let last: Answer | undefined;
    for (let i = 0; i < 40 && last?.status !== 429; i++) last = await call("POST", "/dashboard/api/session", { body: { api_key: `tsk_guess-${i}` } });
    expectError(last!, 429, "rate_limited");
    expect(last!.json().error_message).toContain("failed authentications");
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("limits sign-ins and key creations per address, so guests cannot flood sessions or keys", async () => {
    net = await scriptedNetwork(0, { open: true });
    const guest = async () => call("POST", "/dashboard/api/session", { body: { guest: true } });
    let last = await guest();
    const { cookie, csrf } = { cookie: last.headers.get("set-cookie")!.split(";")[0]!, csrf: last.json().csrf_token as string };
    for (let i = 0; i < 40 && last.status === 200; i++) last = await guest();
    expectError(last, 429, "rate_limited");
    expect(last.json().error_message).toContain("sign-ins per minute");
    let made: Answer | undefined;
    for (let i = 0; i < 20 && made?.status !== 429; i++) made = await call("POST", "/dashboard/api/keys", { cookie, csrf, body: { name: `k${i}` } });
    expectError(made!, 429, "rate_limited");
    expect((await call("GET", "/dashboard/api/keys", { cookie })).json().keys).toHaveLength(10);
    net.t.clock.advance(61_000);
    expect((await guest()).status).toBe(200);
  });
});

describe("the session cookie behind a TLS-terminating proxy", () => {
  it("is Secure with --secure-cookies always; X-Forwarded-Proto alone is not trusted; a bad setting names flag and env", async () => {
    net = await scriptedNetwork(0);
    const forwarded = await call("POST", "/dashboard/api/session", { body: { api_key: net.t.token }, headers: { "x-forwarded-proto": "https" } });
    expect(forwarded.headers.get("set-cookie")).not.toContain("Secure");
    await net.close();

    net = await scriptedNetwork(0, { secureCookies: "always" });
    const res = await call("POST", "/dashboard/api/session", { body: { api_key: net.t.token } });
    expect(res.headers.get("set-cookie")).toMatch(/^tessera_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const out = await call("DELETE", "/dashboard/api/session", { cookie, csrf: res.json().csrf_token });
    expect(out.headers.get("set-cookie")).toMatch(/Max-Age=0; Secure$/);

    expect(loadCoordinatorConfig({}, {}).secureCookies).toBe("auto");
    expect(loadCoordinatorConfig({}, { TESSERA_SECURE_COOKIES: "always" }).secureCookies).toBe("always");
    expect(loadCoordinatorConfig({ secureCookies: "auto" }, { TESSERA_SECURE_COOKIES: "always" }).secureCookies).toBe("auto");
    expect(() => loadCoordinatorConfig({ secureCookies: "yes" }, {})).toThrow(/--secure-cookies \(TESSERA_SECURE_COOKIES\) must be auto or always/);
  });
});

describe("dashboard API keys", () => {
  it("without a session: 401; on a closed network a session cannot make keys (403), only see and revoke its own", async () => {
    net = await scriptedNetwork(0);
    expectError(await call("GET", "/dashboard/api/keys"), 401, "unauthorized");
    expectError(await call("POST", "/dashboard/api/keys", { body: { name: "x" } }), 401, "unauthorized");
    expectError(await call("DELETE", "/dashboard/api/keys/key-test"), 401, "unauthorized");
    const { cookie, csrf } = await signIn(net.t.token);
    expect((await call("GET", "/dashboard/api/keys", { cookie })).json().keys).toEqual([expect.objectContaining({ id: "key-test", name: "test", current: true })]);
    expectError(await call("POST", "/dashboard/api/keys", { cookie, csrf, body: { name: "more" } }), 403, "forbidden");
  });

  it("on an open network: a guest makes a key (token shown once), uses it, revokes it; bad input changes nothing", async () => {
    net = await scriptedNetwork(0, { open: true });
    const guest = await call("POST", "/dashboard/api/session", { body: { guest: true } });
    expect(guest.json()).toMatchObject({ signed_in: true, kind: "guest", open: true });
    const cookie = guest.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = guest.json().csrf_token as string;

    expectError(await call("POST", "/dashboard/api/keys", { cookie, body: { name: "laptop" } }), 403, "forbidden");
    expectError(await call("POST", "/dashboard/api/keys", { cookie, csrf: "wrong", body: { name: "laptop" } }), 403, "forbidden");
    expectError(await call("POST", "/dashboard/api/keys", { cookie, csrf, body: { name: "no spaces <b>" } }), 400, "bad_request");
    expectError(await call("POST", "/dashboard/api/keys", { cookie, csrf, body: { name: "laptop", admin: true } }), 400, "bad_request");
    expect((await call("GET", "/dashboard/api/keys", { cookie })).json().keys).toEqual([]);

    const created = await call("POST", "/dashboard/api/keys", { cookie, csrf, body: { name: "laptop" } });
    expect(created.status).toBe(201);
    const key = created.json();
    expect(key).toMatchObject({ name: "laptop", current: false, last_used_at: null });
    expect(key.token).toMatch(/^tsk_/);
    expect((await call("GET", "/dashboard/api/keys", { cookie })).json().keys).toEqual([expect.not.objectContaining({ token: expect.anything() })]);
    expectError(await call("POST", "/dashboard/api/keys", { cookie, csrf, body: { name: "laptop" } }), 409, "conflict");

    // The new key is a real key: it signs in, and its holder sees it as current.
    const holder = await signIn(key.token);
    expect((await call("GET", "/dashboard/api/keys", { cookie: holder.cookie })).json().keys).toEqual([expect.objectContaining({ id: key.id, current: true })]);

    // Nobody else's key can be revoked from here, whatever its id.
    expectError(await call("DELETE", "/dashboard/api/keys/key-test", { cookie, csrf }), 404, "not_found");
    expect((await call("DELETE", `/dashboard/api/keys/${key.id}`, { cookie, csrf })).status).toBe(204);
    expect(await net.t.coordinator.ctx.store.findApiKeyByHash((await import("../src/api-keys.js")).hashApiToken(key.token))).toBeUndefined();
    expectError(await call("POST", "/dashboard/api/session", { body: { api_key: key.token } }), 401, "unauthorized");
    // The holder's session acted as the revoked key: it ended with it.
    expect((await call("GET", "/dashboard/api/session", { cookie: holder.cookie })).json().signed_in).toBe(false);
  });
});

describe("operator sign-in with a login link", () => {
  it("signs a registered node's operator in once, refuses stale, long-lived, reused and unknown links, and shows its nodes", async () => {
    net = await scriptedNetwork(0);
    const node = newNode();
    expect((await signedInject(net.t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    const nowSeconds = () => Math.floor(net.t.clock.now() / 1000);
    const link = (signer = node.signer, ttlSeconds = 300) => createOperatorToken(signer, { nowSeconds: nowSeconds(), ttlSeconds });

    const stranger = newNode();
    expectError(await call("POST", "/dashboard/api/session", { body: { login_link: link(stranger.signer) } }), 401, "unauthorized");
    expectError(await call("POST", "/dashboard/api/session", { body: { login_link: link(node.signer, 3600) } }), 401, "unauthorized");
    expectError(await call("POST", "/dashboard/api/session", { body: { login_link: "tsop1.nonsense" } }), 401, "unauthorized");
    expectError(await call("POST", "/dashboard/api/session", { body: { login_link: "" } }), 400, "bad_request");
    const tampered = link().replace(/.$/, (c) => (c === "0" ? "1" : "0"));
    expectError(await call("POST", "/dashboard/api/session", { body: { login_link: tampered } }), 401, "unauthorized");
    const stale = link();
    net.t.clock.advance(301_000);
    expectError(await call("POST", "/dashboard/api/session", { body: { login_link: stale } }), 401, "unauthorized");

    const fresh = link();
    const res = await call("POST", "/dashboard/api/session", { body: { login_link: fresh } });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ signed_in: true, kind: "operator", operator: { id: node.id, node_id: node.id } });
    const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const again = await call("POST", "/dashboard/api/session", { body: { login_link: fresh } });
    expectError(again, 401, "unauthorized");
    expect(again.json().error_message).toContain("used already");

    const view = (await call("GET", "/dashboard/api/operator", { cookie })).json();
    expect(view.operator_id).toBe(node.id);
    expect(view.nodes.map((n: { node_id: string }) => n.node_id)).toEqual([node.id]);
    expect(view.earnings).toMatchObject({ operator_id: node.id, held: 0, available: 0, paid: 0, recent: [] });

    expectError(await call("GET", "/dashboard/api/operator"), 401, "unauthorized");
    const client = await signIn(net.t.token);
    expectError(await call("GET", "/dashboard/api/operator", { cookie: client.cookie }), 403, "forbidden");
  });
});

describe("My nodes: payout addresses and jobs served", () => {
  it("shows each node's lifetime jobs, and sets payout addresses as `tessera payout set` does; bad input changes nothing", async () => {
    net = await scriptedNetwork(0);
    const node = newNode();
    expect((await signedInject(net.t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    extraNode = new ScriptedNode(net.baseUrl, node.signer, () => Math.floor(net.t.clock.now() / 1000));
    await extraNode.connect();
    const url = "/dashboard/api/operator/payout-addresses/base";
    const address = "0x52908400098527886e0f7030069857d2e4169ee7";
    expectError(await call("PUT", url, { body: { address } }), 401, "unauthorized");

    const res = await call("POST", "/dashboard/api/session", { body: { login_link: createOperatorToken(node.signer, { nowSeconds: Math.floor(net.t.clock.now() / 1000), ttlSeconds: 300 }) } });
    const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = res.json().csrf_token as string;
    let view = (await call("GET", "/dashboard/api/operator", { cookie })).json();
    expect(view).toMatchObject({ payout_addresses: [], default_chain: "base" });
    expect(view.nodes).toEqual([expect.objectContaining({ node_id: node.id, jobs_served: 0 })]);

    expect((await streamNativeJob(net, {})).events.at(-1)).toBe("[DONE]");
    expect((await streamNativeJob(net, {})).events.at(-1)).toBe("[DONE]");
    await expect.poll(async () => (await call("GET", "/dashboard/api/operator", { cookie })).json().nodes[0].jobs_served).toBe(2);

    expectError(await call("PUT", url, { cookie, body: { address } }), 403, "forbidden");
    expectError(await call("PUT", url, { cookie, csrf, body: { address: "0x1234" } }), 400, "bad_request");
    expectError(await call("PUT", url, { cookie, csrf, body: { address: "0x" + "0".repeat(40) } }), 400, "bad_request");
    expectError(await call("PUT", url, { cookie, csrf, body: { address, extra: 1 } }), 400, "bad_request");
    expectError(await call("PUT", url, { cookie, csrf, body: "{nope" }), 400, "bad_request");
    expectError(await call("PUT", "/dashboard/api/operator/payout-addresses/dogecoin", { cookie, csrf, body: { address } }), 400, "bad_request");
    const solana = await call("PUT", "/dashboard/api/operator/payout-addresses/solana", { cookie, csrf, body: { address } });
    expectError(solana, 400, "bad_request");
    expect(solana.json().error_message).toContain("Solana");
    expect((await call("GET", "/dashboard/api/operator", { cookie })).json().payout_addresses).toEqual([]);

    const set = await call("PUT", url, { cookie, csrf, body: { address } });
    expect(set.status).toBe(200);
    expect(set.json()).toMatchObject({ chain: "base", address: "0x52908400098527886E0F7030069857D2E4169EE7", default: true });
    // The very record `tessera payout list` reads.
    expect((await net.t.coordinator.ctx.store.listPayoutAddresses(node.id)).map((a) => [a.chain, a.address])).toEqual([["base", "0x52908400098527886E0F7030069857D2E4169EE7"]]);
    view = (await call("GET", "/dashboard/api/operator", { cookie })).json();
    expect(view.payout_addresses).toEqual([expect.objectContaining({ chain: "base", default: true })]);

    const client = await signIn(net.t.token);
    expectError(await call("PUT", url, { cookie: client.cookie, csrf: client.csrf, body: { address } }), 403, "forbidden");
  });
});

describe("a payout asked for from the operator page", () => {
  it("is the same request as `tessera payout request`: refused with bad_request and queueing nothing until it can be paid, then 202", async () => {
    const VAULT = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    net = await scriptedNetwork(0, { chainRpc: { base: "http://127.0.0.1:9/" }, vaults: { base: VAULT }, payerKeyFile: "/nonexistent/payer.key" });
    const node = newNode();
    expect((await signedInject(net.t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
    const store = net.t.coordinator.ctx.store;
    const url = "/dashboard/api/operator/payout-requests";
    expectError(await call("POST", url, { body: {} }), 401, "unauthorized");
    const client = await signIn(net.t.token);
    expectError(await call("POST", url, { cookie: client.cookie, csrf: client.csrf, body: {} }), 403, "forbidden");

    const res = await call("POST", "/dashboard/api/session", { body: { login_link: createOperatorToken(node.signer, { nowSeconds: Math.floor(net.t.clock.now() / 1000), ttlSeconds: 300 }) } });
    const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = res.json().csrf_token as string;
    expectError(await call("POST", url, { cookie, body: {} }), 403, "forbidden");
    expectError(await call("POST", url, { cookie, csrf, body: {}, headers: { origin: "https://evil.example" } }), 403, "forbidden");
    const refused = async (body: unknown, message: RegExp) => {
      const answer = await call("POST", url, { cookie, csrf, body });
      expectError(answer, 400, "bad_request");
      expect(answer.json().error_message).toMatch(message);
    };
    await refused({ chain: 7 }, /chain/);
    await refused({ amount: 5 }, /amount/);
    await refused("{nope", /JSON/i);
    await refused({ chain: "dogecoin" }, /not a payout chain/);
    await refused({ chain: "solana" }, /Solana/);
    await refused({}, /no payout address is set/);
    const address = "0x52908400098527886e0f7030069857d2e4169ee7";
    expect((await call("PUT", "/dashboard/api/operator/payout-addresses/base", { cookie, csrf, body: { address } })).status).toBe(200);
    await refused({}, /available earnings are 0 USDC; a payout on base needs at least 1 USDC/);
    net.t.clock.advance(1000);
    expect((await call("PUT", "/dashboard/api/operator/payout-addresses/polygon", { cookie, csrf, body: { address } })).status).toBe(200);
    await refused({}, /does not pay out on polygon \(it pays on base\)/);
    expect(await store.listPayoutRequests()).toEqual([]);

    await seedReceipt(store, node.id, { amount: 3_000_000 });
    expect((await call("GET", "/dashboard/api/operator", { cookie })).json().earnings).toMatchObject({ available: 3_000_000, available_usdc: "3" });
    const asked = await call("POST", url, { cookie, csrf, body: { chain: "base" } });
    expect(asked.status).toBe(202);
    expect(asked.json()).toEqual({ chain: "base", address: "0x52908400098527886E0F7030069857D2E4169EE7", available: 3_000_000, available_usdc: "3", requested_at: new Date(net.t.clock.now()).toISOString() });
    expect(await store.listPayoutRequests()).toEqual([{ operatorId: node.id, requestedAt: new Date(net.t.clock.now()) }]);
    // `chain` made base's address the payout address again, as `tessera payout request --chain base` does.
    expect((await store.listPayoutAddresses(node.id))[0]!.chain).toBe("base");
  });
});

describe("the owner's sign-in and Admin API", () => {
  it("a link signed by the platform key signs the owner in, who lists operators and bans and approves them", async () => {
    net = await scriptedNetwork(1);
    const nowSeconds = Math.floor(net.t.clock.now() / 1000);
    const res = await call("POST", "/dashboard/api/session", { body: { login_link: createOperatorToken(net.t.coordinator.ctx.platform, { nowSeconds, ttlSeconds: 300 }) } });
    expect(res.json()).toMatchObject({ signed_in: true, kind: "admin" });
    const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = res.json().csrf_token as string;

    const view = (await call("GET", "/dashboard/api/admin", { cookie })).json();
    expect(view.admission).toBe("open");
    expect(view.operators).toHaveLength(1);
    const operator = view.operators[0];
    expect(operator).toMatchObject({ status: "active", nodes: 1 });
    expect(view).toMatchObject({ payout_requests: [], payout_batches: [], settlement_chains: [], payout_schedule: "daily", join_tokens: [], quarantined_nodes: [] });
    expect(Date.parse(view.next_payout_at)).toBeGreaterThan(net.t.clock.now());

    const url = `/dashboard/api/admin/operators/${operator.id}`;
    expectError(await call("POST", url, { cookie, body: { status: "banned" } }), 403, "forbidden");
    expectError(await call("POST", url, { cookie, csrf, body: { status: "deleted" } }), 400, "bad_request");
    expectError(await call("POST", "/dashboard/api/admin/operators/not-a-key", { cookie, csrf, body: { status: "banned" } }), 400, "bad_request");
    expectError(await call("POST", `/dashboard/api/admin/operators/${"0".repeat(64)}`, { cookie, csrf, body: { status: "banned" } }), 404, "not_found");
    expect((await call("POST", url, { cookie, csrf, body: { status: "banned", reason: "spam" } })).status).toBe(204);
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().operators[0]).toMatchObject({ status: "banned", reason: "spam" });
    expect((await call("POST", url, { cookie, csrf, body: { status: "active" } })).status).toBe(204);
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().operators[0]).toMatchObject({ status: "active", reason: "approved by the owner" });

    expectError(await call("GET", "/dashboard/api/admin"), 401, "unauthorized");
    const client = await signIn(net.t.token);
    expectError(await call("GET", "/dashboard/api/admin", { cookie: client.cookie }), 403, "forbidden");
    expectError(await call("POST", url, { cookie: client.cookie, csrf: client.csrf, body: { status: "banned" } }), 403, "forbidden");
  });

  it("the owner makes, lists and revokes join tokens, and releases a quarantined node; others cannot", async () => {
    net = await scriptedNetwork(1);
    const nowSeconds = Math.floor(net.t.clock.now() / 1000);
    const signed = await call("POST", "/dashboard/api/session", { body: { login_link: createOperatorToken(net.t.coordinator.ctx.platform, { nowSeconds, ttlSeconds: 300 }) } });
    const cookie = signed.headers.get("set-cookie")!.split(";")[0]!;
    const csrf = signed.json().csrf_token as string;
    const client = await signIn(net.t.token);

    // Join tokens.
    expectError(await call("POST", "/dashboard/api/admin/join-tokens", { body: {} }), 401, "unauthorized");
    expectError(await call("POST", "/dashboard/api/admin/join-tokens", { cookie: client.cookie, csrf: client.csrf, body: {} }), 403, "forbidden");
    expectError(await call("POST", "/dashboard/api/admin/join-tokens", { cookie, body: {} }), 403, "forbidden");
    for (const bad of [{ uses: 0 }, { uses: 1.5 }, { expires_in_seconds: 10 }, { note: "<script>" }, { colour: "red" }]) {
      expectError(await call("POST", "/dashboard/api/admin/join-tokens", { cookie, csrf, body: bad }), 400, "bad_request");
    }
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().join_tokens).toEqual([]);
    const made = await call("POST", "/dashboard/api/admin/join-tokens", { cookie, csrf, body: { uses: 2, expires_in_seconds: 3600, note: "for Ana" } });
    expect(made.status).toBe(201);
    const token = made.json();
    expect(token).toMatchObject({ state: "valid", uses: 0, max_uses: 2, note: "for Ana" });
    expect(token.token).toMatch(/^tsjt_/);
    expect(new Date(token.expires_at).getTime() - new Date(token.created_at).getTime()).toBe(3_600_000);
    const listed = (await call("GET", "/dashboard/api/admin", { cookie })).json().join_tokens;
    expect(listed).toEqual([expect.objectContaining({ id: token.id, state: "valid" })]);
    expect(JSON.stringify(listed)).not.toContain(token.token);
    // The store holds the token's hash, and admission takes a use of it as of one from the CLI.
    const store = net.t.coordinator.ctx.store;
    expect(await store.useJoinToken(hashJoinToken(token.token), new Date(net.t.clock.now()))).toMatchObject({ id: token.id, uses: 1 });
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().join_tokens[0]).toMatchObject({ uses: 1 });

    expectError(await call("DELETE", `/dashboard/api/admin/join-tokens/${token.id}`, { cookie }), 403, "forbidden");
    expectError(await call("DELETE", "/dashboard/api/admin/join-tokens/nope", { cookie, csrf }), 400, "bad_request");
    expectError(await call("DELETE", "/dashboard/api/admin/join-tokens/00000000-0000-4000-8000-000000000000", { cookie, csrf }), 404, "not_found");
    expectError(await call("DELETE", `/dashboard/api/admin/join-tokens/${token.id}`, { cookie: client.cookie, csrf: client.csrf }), 403, "forbidden");
    expect((await call("DELETE", `/dashboard/api/admin/join-tokens/${token.id}`, { cookie, csrf })).status).toBe(204);
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().join_tokens[0]).toMatchObject({ state: "revoked" });
    expectError(await call("DELETE", `/dashboard/api/admin/join-tokens/${token.id}`, { cookie, csrf }), 404, "not_found");
    expect(await store.useJoinToken(hashJoinToken(token.token), new Date(net.t.clock.now()))).toBeUndefined();

    // Quarantine release.
    const [node] = (await call("GET", "/dashboard/api/nodes")).json().nodes.filter((n: { status: string }) => n.status === "online");
    const standing = net.t.coordinator.ctx.standing;
    standing.recordCheck(node.node_id, { passed: false });
    standing.recordCheck(node.node_id, { passed: false });
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().quarantined_nodes).toEqual([expect.objectContaining({ node_id: node.node_id, checks: { passed: 0, failed: 2 } })]);
    const release = `/dashboard/api/admin/nodes/${node.node_id}/release`;
    expectError(await call("POST", release, { body: {} }), 401, "unauthorized");
    expectError(await call("POST", release, { cookie: client.cookie, csrf: client.csrf, body: {} }), 403, "forbidden");
    expectError(await call("POST", release, { cookie, body: {} }), 403, "forbidden");
    expectError(await call("POST", release, { cookie, csrf, body: { reason: 7 } }), 400, "bad_request");
    expectError(await call("POST", "/dashboard/api/admin/nodes/NOTAKEY/release", { cookie, csrf, body: {} }), 400, "bad_request");
    expectError(await call("POST", `/dashboard/api/admin/nodes/${"0".repeat(64)}/release`, { cookie, csrf, body: {} }), 404, "not_found");
    expect(standing.isQuarantined(node.node_id)).toBe(true);
    expect((await call("POST", release, { cookie, csrf, body: { reason: "false alarm" } })).status).toBe(202);
    // The coordinator's release poll (every 5 s when it runs) carries it out, as after `tessera coordinator nodes release`.
    await net.t.coordinator.admissionWatch.poll();
    expect(standing.isQuarantined(node.node_id)).toBe(false);
    expect((await call("GET", "/dashboard/api/admin", { cookie })).json().quarantined_nodes).toEqual([]);
  });
});

describe("the public API through the session", () => {
  it("answers as the session's key (401 without one on a closed network) and streams a job as it is generated", async () => {
    net = await scriptedNetwork(1);
    expectError(await call("GET", "/dashboard/api/v1/models"), 401, "unauthorized");
    const { cookie, csrf } = await signIn(net.t.token);
    const models = await call("GET", "/dashboard/api/v1/models", { cookie });
    expect(models.status).toBe(200);
    expect(models.json().models).toEqual([expect.objectContaining({ id: "tiny", nodes: 1 })]);
    expect(models.headers.get("x-ratelimit-limit")).not.toBeNull();

    const job = { model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true };
    expectError(await call("POST", "/dashboard/api/v1/jobs", { cookie, body: job }), 403, "forbidden");
    expectError(await call("POST", "/dashboard/api/v1/jobs", { cookie, csrf, body: { ...job, temperature: "hot" } }), 400, "bad_request");
    const stream = await call("POST", "/dashboard/api/v1/jobs", { cookie, csrf, body: job });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    const id = stream.headers.get("x-tessera-job-id")!;
    const events = new SseDecoder().push(stream.text).map((e) => e.data);
    expect(events.filter((e) => e !== "[DONE]").map((e) => JSON.parse(e).text).join("")).toBe("Hello world");
    expect(events.at(-1)).toBe("[DONE]");
    const view = await call("GET", `/dashboard/api/v1/jobs/${id}`, { cookie });
    const [node] = (await call("GET", "/dashboard/api/nodes")).json().nodes;
    expect(view.json()).toMatchObject({ id, status: "completed", node_id: node.node_id });
    expectError(await call("GET", "/dashboard/api/v1/jobs/no-such-job", { cookie }), 404, "not_found");
  });
});

describe("the playground's chats with tools, through the session", () => {
  it("reach /v1/chat/completions as the session's key and stream the tool calls; bad tools and a missing session are refused by code", async () => {
    net = await scriptedNetwork(1);
    const call_ = { id: "call_abc", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Lima"}' } };
    net.nodes[0]!.onAssign = (job, node) => {
      node.accept(job.job_id);
      node.stream(job.job_id, [{ type: "tool-calls", calls: [call_], tokens: [5, 6] }, { type: "usage", prompt_tokens: 3, completion_tokens: 2 }, { type: "finish", reason: "stop" }]);
    };
    const url = "/dashboard/api/openai/chat/completions";
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const chat = { model: "tiny", messages: [{ role: "user", content: "weather?" }], stream: true, tools, tool_choice: "required" };
    const unauthorized = await call("POST", url, { body: chat });
    expect({ status: unauthorized.status, code: unauthorized.json().error.code }).toEqual({ status: 401, code: "unauthorized" });
    const { cookie, csrf } = await signIn(net.t.token);
    expectError(await call("POST", url, { cookie, body: chat }), 403, "forbidden");
    for (const bad of [{ ...chat, tools: "nope" }, { ...chat, tools: [{ type: "function", function: { name: "has space" } }] }, { ...chat, tool_choice: "sometimes" }]) {
      const res = await call("POST", url, { cookie, csrf, body: bad });
      expect({ status: res.status, code: res.json().error.code }).toEqual({ status: 400, code: "bad_request" });
    }
    expect(net.nodes[0]!.assignments).toHaveLength(0);
    expectError(await call("GET", url, { cookie }), 404, "not_found");

    const res = await call("POST", url, { cookie, csrf, body: chat });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const chunks = new SseDecoder().push(res.text).map((e) => e.data).filter((d) => d !== "[DONE]").map((d) => JSON.parse(d));
    // As OpenAI streams a call: its id and name first, then its arguments (the page joins them by index).
    expect(chunks.flatMap((c) => c.choices.flatMap((ch: any) => ch.delta.tool_calls ?? []))).toEqual([
      { index: 0, id: "call_abc", type: "function", function: { name: "get_weather", arguments: "" } },
      { index: 0, function: { arguments: '{"city":"Lima"}' } },
    ]);
    expect(chunks.at(-1).choices[0].finish_reason).toBe("tool_calls");
    expect(net.nodes[0]!.assignments[0]!.sampling).toMatchObject({ tools, tool_choice: "required" });
    // The completion id names the job, whose record (through the session) names the node that answered.
    const job = (chunks[0].id as string).replace(/^chatcmpl-/, "");
    expect((await call("GET", `/dashboard/api/v1/jobs/${job}`, { cookie })).json()).toMatchObject({ status: "completed" });
  });
});

/** Reads `event: jobs` payloads from the Jobs page's stream as they come. */
async function jobEvents(cookie: string | undefined) {
  const res = await fetch(net.baseUrl + "/dashboard/api/jobs/events", { headers: cookie ? { cookie } : {} });
  expect(res.status).toBe(200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    headers: res.headers,
    /** The next `jobs` event's list, or "ended" when the stream ends first. */
    async next(): Promise<Array<{ id: string; status: string }> | "ended"> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith("event: jobs\n")) return JSON.parse(block.slice(block.indexOf("data: ") + 6)).jobs;
          continue;
        }
        const { value, done } = await reader.read();
        if (done) return "ended";
        buffer += value;
      }
    },
    close: () => reader.cancel(),
  };
}

describe("the Jobs list, live", () => {
  it("pushes the session's jobs when the stream opens and each time they change, and ends with the session", async () => {
    net = await scriptedNetwork(1);
    expectError(await call("GET", "/dashboard/api/jobs/events"), 401, "unauthorized");
    expectError(await call("GET", "/dashboard/api/jobs/events", { cookie: "tessera_session=forged" }), 401, "unauthorized");

    const { cookie, csrf } = await signIn(net.t.token);
    const stream = await jobEvents(cookie);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    expect(await stream.next()).toEqual([]);

    // A job made outside the page (as curl would, with the same key) shows up without the page asking.
    const node = net.nodes[0]!;
    node.onAssign = (job, n) => n.accept(job.job_id);
    const submitted = await fetch(`${net.baseUrl}/api/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${net.t.token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }] }),
    });
    const id = ((await submitted.json()) as { id: string }).id;
    let jobs = await stream.next();
    while (jobs !== "ended" && jobs[0]?.status !== "processing") jobs = await stream.next();
    expect(jobs).toEqual([expect.objectContaining({ id, status: "processing" })]);
    node.stream(id, [{ type: "text-delta", text: "Hi" }, { type: "usage", prompt_tokens: 3, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
    jobs = await stream.next();
    while (jobs !== "ended" && jobs[0]?.status !== "completed") jobs = await stream.next();
    expect(jobs).toEqual([expect.objectContaining({ id, status: "completed", result: expect.objectContaining({ content: "Hi" }) })]);

    // Signing out ends the stream: what it shows is the session's, and the session is gone.
    expect((await call("DELETE", "/dashboard/api/session", { cookie, csrf })).status).toBe(204);
    expect(await stream.next()).toBe("ended");
  });

  it("on an open network without a key: this address's jobs, as the public API serves them", async () => {
    net = await scriptedNetwork(0, { open: true });
    const stream = await jobEvents(undefined);
    expect(await stream.next()).toEqual([]);
    await stream.close();
  });
});

describe("streaming through the session", () => {
  it("passes each part on as the node sends it, and cancels the job on the node when the browser leaves", async () => {
    net = await scriptedNetwork(1);
    const node = net.nodes[0]!;
    // The node sends one part and holds the rest: what arrives before the job ends arrived as it was generated.
    node.onAssign = (job, n) => {
      n.accept(job.job_id);
      n.stream(job.job_id, [{ type: "text-delta", text: "Hello" }]);
    };
    const { cookie, csrf } = await signIn(net.t.token);
    const abort = new AbortController();
    const res = await fetch(`${net.baseUrl}/dashboard/api/v1/jobs`, {
      method: "POST",
      headers: { cookie, "x-tessera-csrf": csrf, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true }),
      signal: abort.signal,
    });
    const jobId = res.headers.get("x-tessera-job-id")!;
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes("Hello")) text += new TextDecoder().decode((await reader.read()).value);
    expect(node.cancels).toEqual([]);
    abort.abort();
    for (let i = 0; i < 200 && !node.cancels.includes(jobId); i++) await new Promise((r) => setTimeout(r, 10));
    expect(node.cancels).toEqual([jobId]);
  });
});

describe("network figures", () => {
  it("shows the online nodes with their standing, the models, and a sample history", async () => {
    net = await scriptedNetwork(2);
    const nodes = (await call("GET", "/dashboard/api/nodes")).json().nodes;
    expect(nodes).toHaveLength(2);
    expect(nodes[0]).toMatchObject({ status: "online", state: "serving", tier: "probation", models: ["tiny"], cpu_cores: 4, quarantined: false, checks: { passed: 0, failed: 0 } });
    const first = (await call("GET", "/dashboard/api/network")).json();
    expect(first.now).toMatchObject({ nodes_online: 2, models: 1, jobs_in_flight: 0, jobs_pending: 0, jobs_per_minute: null, tokens_per_second: null });
    net.t.clock.advance(61_000);
    const later = (await call("GET", "/dashboard/api/network")).json();
    expect(later.history).toHaveLength(1);
    expect(later.now).toMatchObject({ jobs_per_minute: 0, tokens_per_second: 0 });
    // Served tokens are the coordinator's own count of what it relayed: two jobs of 600 token ids each in 60 s.
    for (const node of net.nodes) {
      node.onAssign = (job, n) => {
        n.accept(job.job_id);
        n.stream(job.job_id, [
          { type: "text-delta", text: "x".repeat(600), tokens: Array.from({ length: 600 }, (_, i) => 100 + i) },
          { type: "usage", prompt_tokens: 3, completion_tokens: 600 },
          { type: "finish", reason: "length" },
        ]);
      };
    }
    for (let i = 0; i < 2; i++) expect((await streamNativeJob(net, { max_tokens: 600 })).events.at(-1)).toBe("[DONE]");
    net.t.clock.advance(60_000);
    expect((await call("GET", "/dashboard/api/network")).json().now).toMatchObject({ jobs_per_minute: 2, tokens_per_second: 20 });

    const events = await fetch(`${net.baseUrl}/dashboard/api/events`);
    expect(events.headers.get("content-type")).toContain("text/event-stream");
    const reader = events.body!.getReader();
    let text = "";
    while (!text.includes("event: nodes")) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(text).toContain("event: network");
    expect(JSON.parse(/event: nodes\ndata: (.*)\n/.exec(text)![1]!).nodes).toHaveLength(2);
  });
});

describe("sharded models in the models list", () => {
  it("says a model is sharded and over how many stages; a model every node holds whole says nothing of it", async () => {
    net = await scriptedNetwork(2);
    const { cookie } = await signIn(net.t.token);
    const models = async () => new Map<string, any>((await call("GET", "/dashboard/api/v1/models", { cookie })).json().models.map((m: { id: string }) => [m.id, m]));
    const until = async (ok: (m: Map<string, any>) => boolean) => {
      for (let i = 0; i < 200 && !ok(await models()); i++) await new Promise((r) => setTimeout(r, 10));
      return models();
    };
    // Each node can hold 2 of the model's 4 layers (its session's stage offer): alone, one cannot hold them all.
    const offer = { type: "stage.offer", shards: [{ model: "big", sha256: "b".repeat(64), layer_count: 4, bytes_per_layer: 1000, free_memory_bytes: 2500 }] };
    net.nodes[0]!.send(offer);
    let listed = await until((m) => m.has("big"));
    expect(listed.get("big").sharded).toEqual({ stages: null, layers: 4, nodes: 0, ready: false });
    expect(listed.get("tiny").sharded).toBeUndefined();
    net.nodes[1]!.send(offer);
    listed = await until((m) => m.get("big")?.sharded.stages === 2);
    expect(listed.get("big")).toMatchObject({ nodes: 1, sharded: { stages: 2, layers: 4, nodes: 2, ready: false } });
    // Both spans load (stage ids 1 and 2; a stage.loaded for another node's stage is ignored): the chain is ready.
    for (const node of net.nodes) for (const stage_id of [1, 2]) node.send({ type: "stage.loaded", stage_id, ms_per_layer: 1 });
    listed = await until((m) => m.get("big")?.sharded.ready === true);
    expect(listed.get("big").sharded).toEqual({ stages: 2, layers: 4, nodes: 2, ready: true });
  });
});

describe("nodes away, and why", () => {
  it("shows why a draining node stepped aside, as far as the coordinator knows the reason; anything else is unspecified", async () => {
    net = await scriptedNetwork(3);
    // Each node says draining: one with a known reason, one with free text (a node may say anything), one with none
    // (an older daemon).
    const said = ["owner_active", "Alice's MacBook, Paris", undefined];
    for (const [i, node] of net.nodes.entries()) node.send(said[i] === undefined ? { type: "draining" } : { type: "draining", reason: said[i] });
    const byId = async () => new Map<string, any>((await call("GET", "/dashboard/api/nodes")).json().nodes.map((n: { node_id: string }) => [n.node_id, n]));
    for (let i = 0; i < 200 && [...(await byId()).values()].some((n) => n.state !== "draining"); i++) await new Promise((r) => setTimeout(r, 10));
    const reasons = [...(await byId()).values()].map((n) => n.drain_reason).sort();
    expect(reasons).toEqual(["owner_active", "unspecified", "unspecified"]);
    expect(JSON.stringify(await byId())).not.toContain("Paris");

    // The public node view says it too; a node that serves again (a heartbeat without draining) has no reason.
    const away = [...(await byId()).values()].find((n) => n.drain_reason === "owner_active");
    const view = await call("GET", `/api/v1/nodes/${away.node_id}`);
    expect(view.json()).toMatchObject({ node_id: away.node_id, status: "online", drain_reason: "owner_active" });
    net.t.coordinator.ctx.registry.heartbeat(away.node_id, { type: "heartbeat", gpus: [], loaded_models: ["tiny"], active_jobs: 0, max_concurrency: 2, draining: false });
    expect((await byId()).get(away.node_id)).toMatchObject({ state: "serving", drain_reason: null });
    expect((await call("GET", `/api/v1/nodes/${away.node_id}`)).json().drain_reason).toBeUndefined();
    // A heartbeat alone that says draining (no session message): draining, reason unspecified.
    net.t.coordinator.ctx.registry.heartbeat(away.node_id, { type: "heartbeat", gpus: [], loaded_models: ["tiny"], active_jobs: 0, max_concurrency: 2, draining: true });
    expect((await byId()).get(away.node_id)).toMatchObject({ state: "draining", drain_reason: "unspecified" });
  });
});

describe("static files", () => {
  it("serves the build with content types and cache headers, only its own files, and says so when there is none", async () => {
    net = await scriptedNetwork(0);
    const dir = mkdtempSync(join(tmpdir(), "tessera-dashboard-static-"));
    try {
      mkdirSync(join(dir, "assets"));
      writeFileSync(join(dir, "index.html"), "<!doctype html><title>Tessera</title>");
      writeFileSync(join(dir, "assets", "index-abc123.js"), "console.log(1)");
      writeFileSync(join(dir, "assets", "index-abc123.css"), "body{}");
      const served = async (staticDir: string | undefined) => {
        const app = Fastify();
        installJsonBody(app);
        installErrorHandling(app, createLogger("silent"));
        mountDashboard(app, { ...dashboardDepsOf(net.t.coordinator.ctx), staticDir });
        return app;
      };
      const app = await served(dir);
      const index = await app.inject({ method: "GET", url: "/" });
      expect(index.statusCode).toBe(200);
      expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(index.headers["cache-control"]).toBe("no-cache");
      expect(index.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      const js = await app.inject({ method: "GET", url: "/assets/index-abc123.js" });
      expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
      expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect((await app.inject({ method: "GET", url: "/assets/index-abc123.css" })).headers["content-type"]).toBe("text/css; charset=utf-8");
      for (const url of ["/assets/missing.js", "/assets/../index.html", "/assets/%2e%2e/%2e%2e/package.json"]) {
        const res = await app.inject({ method: "GET", url });
        expect({ url, status: res.statusCode, error: res.json().error }).toEqual({ url, status: 404, error: "not_found" });
      }
      const none = await (await served(join(dir, "nowhere"))).inject({ method: "GET", url: "/" });
      expect({ status: none.statusCode, error: none.json().error }).toEqual({ status: 404, error: "not_found" });
      expect(none.json().error_message).toContain("npm run build");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
