import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type NodeRegister, type Signer, signDelegation, signRequest } from "@tessera/protocol";
import { newNode, registration, testCoordinator, type TestCoordinator } from "../../test/harness.js";
import { seedReceipt } from "../store/payout-queries.test-support.js";
import type { Store } from "../store/types.js";

const USDC = 1_000_000;
const VAULT = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const SOLANA = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV";

let t: TestCoordinator;
let store: Store;
beforeEach(async () => {
  t = await testCoordinator({ chainRpc: { base: "http://127.0.0.1:9/", ethereum: "http://127.0.0.1:9/" }, vaults: { base: VAULT, ethereum: VAULT }, payerKeyFile: "/nonexistent/payer.key" });
  store = t.coordinator.ctx.store;
});
afterEach(async () => {
  await t.close();
});

const nowS = () => Math.floor(t.clock.now() / 1000);

async function call(signer: Signer | undefined, method: "GET" | "POST" | "PUT", url: string, body?: unknown, nonce?: string) {
  const payload = body === undefined ? "" : JSON.stringify(body);
  const auth = signer ? signRequest(signer, { method, path: url, body: payload }, { nowSeconds: nowS(), ...(nonce ? { nonce } : {}) }) : {};
  return t.coordinator.app.inject({
    method,
    url,
    headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { payload }),
  });
}

/** An operator with one node registered under it (a delegation), as `tessera operator init` sets a machine up. */
async function operatorWithNode(): Promise<{ operator: { signer: Signer; id: string }; node: { signer: Signer; id: string } }> {
  const operator = newNode();
  const node = newNode();
  const reg: NodeRegister = { ...registration(node.id), delegation: signDelegation(operator.signer, node.id, { nowSeconds: nowS() }) };
  const res = await call(node.signer, "POST", "/api/v1/nodes/register", reg);
  expect(res.statusCode).toBe(200);
  return { operator, node };
}

/** A node without an operator key: it is its own operator. */
async function selfOperated(): Promise<{ signer: Signer; id: string }> {
  const node = newNode();
  expect((await call(node.signer, "POST", "/api/v1/nodes/register", registration(node.id))).statusCode).toBe(200);
  return node;
}

function expectError(res: { statusCode: number; json(): unknown }, status: number, code: string, message?: string | RegExp) {
  expect(res.statusCode).toBe(status);
  expect(res.json()).toMatchObject({ error: code, ...(message ? { error_message: expect.stringMatching(message) } : {}) });
}

describe("payout addresses", () => {
  it("the operator key sets an address per chain (checksummed); the newest is the default; GET lists them", async () => {
    const { operator } = await operatorWithNode();
    const set = await call(operator.signer, "PUT", "/api/v1/payouts/addresses/base", { address: ADDRESS.toLowerCase() });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toEqual({ chain: "base", address: ADDRESS, default: true, updated_at: new Date(t.clock.now()).toISOString() });
    t.clock.advance(1000);
    expect((await call(operator.signer, "PUT", "/api/v1/payouts/addresses/ethereum", { address: ADDRESS })).statusCode).toBe(200);
    const list = await call(operator.signer, "GET", "/api/v1/payouts/addresses");
    expect(list.json()).toMatchObject({ default_chain: "base", addresses: [{ chain: "ethereum", default: true }, { chain: "base", default: false }] });
  });

  it("a self-operated node's key is its operator key", async () => {
    const node = await selfOperated();
    expect((await call(node.signer, "PUT", "/api/v1/payouts/addresses/polygon", { address: ADDRESS })).statusCode).toBe(200);
    expect((await store.listPayoutAddresses(node.id)).map((a) => a.chain)).toEqual(["polygon"]);
  });

  it("refuses, storing nothing: unsigned, replayed, an API key, an unknown key, a node key that is not the operator's", async () => {
    const { operator, node } = await operatorWithNode();
    const url = "/api/v1/payouts/addresses/base";
    expectError(await call(undefined, "PUT", url, { address: ADDRESS }), 401, "unauthorized", /must be signed/);
    const apiKey = await t.coordinator.app.inject({ method: "PUT", url, headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" }, payload: { address: ADDRESS } });
    expectError(apiKey, 401, "unauthorized");
    expectError(await call(newNode().signer, "PUT", url, { address: ADDRESS }), 403, "forbidden", /not an operator here/);
    expectError(await call(node.signer, "PUT", url, { address: ADDRESS }), 403, "forbidden");
    expect((await call(operator.signer, "PUT", url, { address: ADDRESS }, "ab".repeat(16))).statusCode).toBe(200);
    expectError(await call(operator.signer, "PUT", url, { address: ADDRESS }, "ab".repeat(16)), 401, "unauthorized", /replayed/);
    expect(await store.listPayoutAddresses(node.id)).toEqual([]);
    expectError(await call(undefined, "GET", "/api/v1/payouts/addresses"), 401, "unauthorized");
    expectError(await call(newNode().signer, "GET", "/api/v1/payouts/addresses"), 403, "forbidden");
  });

  it.each([
    ["a chain it does not know", "dogecoin", { address: ADDRESS }, /not a payout chain: give one of base, ethereum, polygon, arbitrum/],
    ["Solana as the chain", "solana", { address: SOLANA }, /Solana payouts are not supported yet/],
    ["a Solana address", "base", { address: SOLANA }, /Solana payouts are not supported yet/],
    ["a short address", "base", { address: "0x1234" }, /not an EVM payout address/],
    ["a wrong checksum", "base", { address: ADDRESS.replace("C51812dc3A", "c51812dc3A") }, /checksum/],
    ["the zero address", "base", { address: `0x${"0".repeat(40)}` }, /zero address/],
    ["no address", "base", {}, /"address": "0x…"/],
    ["a number", "base", { address: 42 }, /"address": "0x…"/],
    ["an extra field", "base", { address: ADDRESS, chain: "base" }, /unknown field chain/],
    ["an array body", "base", [ADDRESS], /JSON object/],
  ])("refuses %s with bad_request and stores nothing", async (_name, chain, body, message) => {
    const { operator } = await operatorWithNode();
    expectError(await call(operator.signer, "PUT", `/api/v1/payouts/addresses/${chain}`, body), 400, "bad_request", message);
    expect(await store.listPayoutAddresses(operator.id)).toEqual([]);
  });
});

describe("payout requests", () => {
  it("queues a request when available earnings reach the chain's minimum; with --chain that chain becomes the payout address", async () => {
    const { operator } = await operatorWithNode();
    await seedReceipt(store, operator.id, { amount: 12 * USDC, fee: 1_800_000 });
    await call(operator.signer, "PUT", "/api/v1/payouts/addresses/ethereum", { address: ADDRESS });
    t.clock.advance(1000);
    await call(operator.signer, "PUT", "/api/v1/payouts/addresses/base", { address: ADDRESS });
    t.clock.advance(1000);
    const res = await call(operator.signer, "POST", "/api/v1/payouts/requests", { chain: "ethereum" });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ chain: "ethereum", address: ADDRESS, available: 10_200_000, available_usdc: "10.2", requested_at: new Date(t.clock.now()).toISOString() });
    expect(await store.listPayoutRequests()).toEqual([{ operatorId: operator.id, requestedAt: new Date(t.clock.now()) }]);
    expect((await store.listPayoutAddresses(operator.id))[0]!.chain).toBe("ethereum");
    // Without a body: the default (most recent) address.
    expect((await call(operator.signer, "POST", "/api/v1/payouts/requests")).json()).toMatchObject({ chain: "ethereum" });
  });

  it("refuses, queueing nothing: no address, too little (saying how much more), a chain not served, a bad chain, Solana, unknown operator, unsigned", async () => {
    const { operator } = await operatorWithNode();
    const url = "/api/v1/payouts/requests";
    expectError(await call(operator.signer, "POST", url), 400, "bad_request", /no payout address is set: set one first with `tessera payout set --chain base --address 0x…`/);
    await call(operator.signer, "PUT", "/api/v1/payouts/addresses/base", { address: ADDRESS });
    await seedReceipt(store, operator.id, { amount: 400_000 });
    expectError(await call(operator.signer, "POST", url), 400, "bad_request", /available earnings are 0.4 USDC; a payout on base needs at least 1 USDC, 0.6 USDC more/);
    await seedReceipt(store, operator.id, { amount: 5 * USDC });
    expectError(await call(operator.signer, "POST", url, { chain: "polygon" }), 400, "bad_request", /no payout address on polygon/);
    t.clock.advance(1000);
    await call(operator.signer, "PUT", "/api/v1/payouts/addresses/polygon", { address: ADDRESS });
    expectError(await call(operator.signer, "POST", url), 400, "bad_request", /does not pay out on polygon \(it pays on base, ethereum\)/);
    t.clock.advance(1000);
    await call(operator.signer, "PUT", "/api/v1/payouts/addresses/ethereum", { address: ADDRESS });
    expectError(await call(operator.signer, "POST", url), 400, "bad_request", /a payout on ethereum needs at least 10 USDC, 4.6 USDC more/);
    expectError(await call(operator.signer, "POST", url, { chain: "dogecoin" }), 400, "bad_request", /not a payout chain/);
    expectError(await call(operator.signer, "POST", url, { chain: "solana" }), 400, "bad_request", /Solana payouts are not supported yet/);
    expectError(await call(operator.signer, "POST", url, { chain: 1 }), 400, "bad_request", /chain must be a string/);
    expectError(await call(operator.signer, "POST", url, { amount: 5 }), 400, "bad_request", /unknown field amount/);
    expectError(await call(newNode().signer, "POST", url), 403, "forbidden");
    expectError(await call(undefined, "POST", url), 401, "unauthorized");
    expect(await store.listPayoutRequests()).toEqual([]);
    expect((await call(operator.signer, "POST", url, { chain: "base" })).statusCode).toBe(202);
  });
});

describe("earnings", () => {
  it("shows held, available, in flight, paid, lifetime and forfeited in micro-USDC with exact USDC strings, the newest receipts and batches", async () => {
    const { operator } = await operatorWithNode();
    await seedReceipt(store, operator.id, { amount: 1_000_000, fee: 150_000, reward: 50_000 }, "held");
    await seedReceipt(store, operator.id, { amount: 3_000_000 });
    await store.createPayoutBatch({ id: "b1", chain: "base", operators: [{ operatorId: operator.id, address: ADDRESS }], minimum: 1, at: new Date(t.clock.now()) });
    await store.markPayoutBatchSubmitted("b1", "0xaa", new Date(t.clock.now()));
    await seedReceipt(store, operator.id, { amount: 2_500_000 });
    const res = await call(operator.signer, "GET", "/api/v1/payouts/earnings");
    expect(res.statusCode).toBe(200);
    const view = res.json();
    expect(view).toMatchObject({
      operator_id: operator.id,
      currency: "USDC",
      unit: "micro",
      held: 900_000,
      held_usdc: "0.9",
      available: 2_500_000,
      available_usdc: "2.5",
      in_flight: 3_000_000,
      in_flight_usdc: "3",
      paid: 0,
      paid_usdc: "0",
      lifetime: 6_400_000,
      lifetime_usdc: "6.4",
      forfeited: 0,
      forfeited_usdc: "0",
    });
    expect(view.recent).toHaveLength(3);
    expect(view.recent.map((r: { earned: number }) => r.earned).sort()).toEqual([2_500_000, 3_000_000, 900_000].sort());
    expect(view.batches).toEqual([
      expect.objectContaining({ id: "b1", chain: "base", status: "submitted", amount: 3_000_000, amount_usdc: "3", address: ADDRESS, tx_hash: "0xaa" }),
    ]);
    await store.confirmPayoutBatch("b1", "0xaa", new Date(t.clock.now()));
    expect((await call(operator.signer, "GET", "/api/v1/payouts/earnings")).json()).toMatchObject({ in_flight: 0, paid: 3_000_000, lifetime: 6_400_000 });
  });

  it("an operator who earned nothing sees zeros; a stranger is forbidden; unsigned is refused", async () => {
    const node = await selfOperated();
    expect((await call(node.signer, "GET", "/api/v1/payouts/earnings")).json()).toMatchObject({ held: 0, available: 0, lifetime: 0, recent: [], batches: [] });
    expectError(await call(newNode().signer, "GET", "/api/v1/payouts/earnings"), 403, "forbidden");
    expectError(await call(undefined, "GET", "/api/v1/payouts/earnings"), 401, "unauthorized");
  });
});
