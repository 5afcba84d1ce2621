import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fundRewardPool, topUp } from "../src/payments/ledger-rules.js";
import { REWARD_POOL, clientCredit, operatorHeld } from "../src/store/ledger-accounts.js";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

/** Billing through the real HTTP API: 402 before any work, the charge from receipts, refunds, GET /api/v1/billing. */
let t: TestCoordinator;
let node: ScriptedNode;
let baseUrl: string;
let nodeId: string;
const OWNER = "key:key-test";
// 1 USDC per 1K prompt tokens, 10 USDC per 1K completion tokens.
const PRICE = { input_per_1k: 1_000_000, output_per_1k: 10_000_000 };

async function api(method: string, path: string, body?: unknown, token: string | undefined = t.token) {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: () => JSON.parse(text) };
}

async function setUp(price: object): Promise<void> {
  const prices = join(mkdtempSync(join(tmpdir(), "tessera-prices-")), "prices.json");
  writeFileSync(prices, JSON.stringify({ default: price }));
  t = await testCoordinator({ pricesFile: prices });
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
  const n = newNode();
  nodeId = n.id;
  expect((await signedInject(t, n.signer, "POST", "/api/v1/nodes/register", registration(n.id))).statusCode).toBe(200);
  node = new ScriptedNode(baseUrl, n.signer, () => Math.floor(t.clock.now() / 1000));
  await node.connect();
}

async function balance(): Promise<number> {
  return (await t.coordinator.ctx.store.getBalances([clientCredit(OWNER)])).get(clientCredit(OWNER)) ?? 0;
}

async function until<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never held");
}

afterEach(async () => {
  await node?.close();
  await t?.close();
});

describe("a free network", () => {
  beforeEach(async () => setUp({ input_per_1k: 0, output_per_1k: 0, reward_input_per_1k: 1_000, reward_output_per_1k: 100_000 }));

  it("charges clients nothing and pays the operator its reward rates from the pool the owner funded", async () => {
    await t.coordinator.ctx.store.postTransaction(fundRewardPool(1_000_000, "owner", new Date(t.clock.now())));
    // No credit at all, and the job runs: nothing to hold.
    const created = await api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 100 });
    expect(created.status).toBe(202);
    const jobId = created.json().id as string;
    const [receipt] = await until(async () => {
      const list = await t.coordinator.ctx.store.listReceipts({ jobId, limit: 10 });
      return list.length > 0 ? list : undefined;
    });
    // The default scripted answer: 7 prompt tokens, 2 completion tokens (relayed as 2 deltas).
    expect(receipt).toMatchObject({ amount: 0, fee: 0, reward: 7 + 200, price: { input_per_1k: 0, output_per_1k: 0 } });
    const balances = await t.coordinator.ctx.store.getBalances([REWARD_POOL, operatorHeld(nodeId), clientCredit(OWNER)]);
    expect(balances.get(REWARD_POOL)).toBe(1_000_000 - 207);
    expect(balances.get(operatorHeld(nodeId))).toBe(207);
    expect(balances.get(clientCredit(OWNER))).toBe(0);
  });

  it("still serves, and pays no reward, once the pool is empty", async () => {
    const created = await api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 100 });
    const jobId = created.json().id as string;
    const [receipt] = await until(async () => {
      const list = await t.coordinator.ctx.store.listReceipts({ jobId, limit: 10 });
      return list.length > 0 ? list : undefined;
    });
    expect(receipt).toMatchObject({ amount: 0, reward: 0 });
    expect((await t.coordinator.ctx.store.auditLedger()).negative).toEqual([]);
  });
});

describe("a paid network", () => {
  beforeEach(async () => setUp(PRICE));

  it("refuses a job the credit cannot cover with 402 insufficient_funds, on both APIs, holding nothing", async () => {
    const native = await api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 100 });
    expect(native.status).toBe(402);
    expect(native.json()).toMatchObject({ error: "insufficient_funds" });
    const openai = await api("POST", "/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 100 });
    expect(openai.status).toBe(402);
    expect(openai.json().error).toMatchObject({ code: "insufficient_funds", type: "insufficient_funds" });
    expect(node.assignments).toEqual([]);
    expect(await balance()).toBe(0);
    expect((await t.coordinator.ctx.store.auditLedger()).negative).toEqual([]);
  });

  it("charges the tokens used from the receipts, refunds the rest of the escrow, and shows it on /api/v1/billing", async () => {
    node.onAssign = (job, n) => n.accept(job.job_id);
    await t.coordinator.ctx.store.postTransaction(topUp(OWNER, 5_000_000, "test", new Date(t.clock.now())));
    const created = await api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 100 });
    expect(created.status).toBe(202);
    const jobId = created.json().id as string;
    // While it runs, the greatest cost is held.
    const running = (await api("GET", "/api/v1/billing")).json();
    expect(running.held.micro).toBeGreaterThanOrEqual(1_000_000);
    expect(running.balance.micro + running.held.micro).toBe(5_000_000);
    await until(async () => (node.assignments.length > 0 ? true : undefined));
    node.stream(jobId, [
      { type: "text-delta", text: "a", tokens: [1] },
      { type: "text-delta", text: "b", tokens: [2] },
      { type: "text-delta", text: "c", tokens: [3] },
      { type: "usage", prompt_tokens: 7, completion_tokens: 3 },
      { type: "finish", reason: "stop" },
    ]);
    const [receipt] = await until(async () => {
      const list = await t.coordinator.ctx.store.listReceipts({ jobId, limit: 10 });
      return list.length > 0 ? list : undefined;
    });
    // 7 prompt tokens at 1 USDC/1K = 7000, 3 completion tokens at 10 USDC/1K = 30000.
    expect(receipt).toMatchObject({ input_tokens: 7, output_tokens: 3, amount: 37_000, fee: 5_550, reward: 0, status: "held", client_key_id: OWNER });
    const billing = (await api("GET", "/api/v1/billing")).json();
    expect(billing).toMatchObject({ currency: "USDC", balance: { micro: 5_000_000 - 37_000, usdc: "4.963" }, held: { micro: 0 } });
    expect(billing.spend_by_day).toEqual([{ day: new Date(t.clock.now()).toISOString().slice(0, 10), amount: { micro: 37_000, usdc: "0.037" }, receipts: 1 }]);
    expect(billing.top_ups).toHaveLength(1);
    const audit = await t.coordinator.ctx.store.auditLedger();
    expect(audit).toMatchObject({ sum: 0, negative: [], unbalanced: [], drifted: [] });
  });

  it("refunds a failed job in full", async () => {
    node.onAssign = (job, n) => n.accept(job.job_id);
    await t.coordinator.ctx.store.postTransaction(topUp(OWNER, 2_000_000, "test", new Date(t.clock.now())));
    const created = await api("POST", "/api/v1/jobs", { model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 100 });
    const jobId = created.json().id as string;
    await until(async () => (node.assignments.length > 0 ? true : undefined));
    expect(await balance()).toBeLessThan(2_000_000);
    node.stream(jobId, [{ type: "error", code: "bad_request", message: "cannot" }]);
    await until(async () => ((await balance()) === 2_000_000 ? true : undefined));
    expect(await t.coordinator.ctx.store.listReceipts({ jobId, limit: 10 })).toEqual([]);
  });

  it("answers /api/v1/billing only with a valid key", async () => {
    expect((await api("GET", "/api/v1/billing", undefined, "")).status).toBe(401);
    expect((await api("GET", "/api/v1/billing", undefined, "tsk_wrong")).status).toBe(401);
  });
});
