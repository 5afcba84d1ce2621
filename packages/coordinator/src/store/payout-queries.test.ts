import { expect, it } from "vitest";
import { operatorAvailable, operatorPaid, payoutInFlight } from "./ledger-accounts.js";
import { SEED_AT as T0, balanceOf as balance, expectLedgerSound, seedReceipt } from "./payout-queries.test-support.js";
import { type OpenTestStore, describeOnBothDialects, storeEachTest } from "./postgres-test-support.js";
import type { Store } from "./types.js";

const OP_A = "a".repeat(64);
const OP_B = "b".repeat(64);
const OP_C = "c".repeat(64);
const ADDR_A = "0x00000000000000000000000000000000000000aa";
const ADDR_B = "0x00000000000000000000000000000000000000bb";

function definePayoutSuite(open: OpenTestStore): void {
  let store: Store;
  storeEachTest(open, (opened) => (store = opened));

  it("keeps one address per chain, replaced in place, most recently set first", async () => {
    expect(await store.listPayoutAddresses(OP_A)).toEqual([]);
    await store.setPayoutAddress({ operatorId: OP_A, chain: "base", address: ADDR_A, updatedAt: T0 });
    await store.setPayoutAddress({ operatorId: OP_A, chain: "polygon", address: ADDR_B, updatedAt: new Date(T0.getTime() + 1000) });
    expect((await store.listPayoutAddresses(OP_A)).map((a) => [a.chain, a.address])).toEqual([["polygon", ADDR_B], ["base", ADDR_A]]);
    await store.setPayoutAddress({ operatorId: OP_A, chain: "base", address: ADDR_B, updatedAt: new Date(T0.getTime() + 2000) });
    const list = await store.listPayoutAddresses(OP_A);
    expect(list).toEqual([
      { operatorId: OP_A, chain: "base", address: ADDR_B, updatedAt: new Date(T0.getTime() + 2000) },
      { operatorId: OP_A, chain: "polygon", address: ADDR_B, updatedAt: new Date(T0.getTime() + 1000) },
    ]);
    expect(await store.listPayoutAddresses(OP_B)).toEqual([]);
    await expect(store.setPayoutAddress({ operatorId: OP_A, chain: "base", address: "x".repeat(600), updatedAt: T0 })).rejects.toMatchObject({ code: "bad_request" });
  });

  it("a second payout request keeps the first one's place; requests list oldest first", async () => {
    await store.requestPayout(OP_B, new Date(T0.getTime() + 5));
    await store.requestPayout(OP_A, new Date(T0.getTime() + 10));
    await store.requestPayout(OP_B, new Date(T0.getTime() + 20));
    expect(await store.listPayoutRequests()).toEqual([
      { operatorId: OP_B, requestedAt: new Date(T0.getTime() + 5) },
      { operatorId: OP_A, requestedAt: new Date(T0.getTime() + 10) },
    ]);
  });

  it("a batch claims each operator's free available receipts, moves their sum to in-flight, skips those under the minimum and clears requests", async () => {
    const a1 = await seedReceipt(store, OP_A, { amount: 1_000_000, fee: 150_000 });
    const a2 = await seedReceipt(store, OP_A, { amount: 500_000, fee: 75_000, reward: 100_000 });
    const aHeld = await seedReceipt(store, OP_A, { amount: 9_000_000 }, "held");
    const b1 = await seedReceipt(store, OP_B, { amount: 200_000 });
    await store.requestPayout(OP_A, T0);
    await store.requestPayout(OP_B, T0);
    await store.requestPayout(OP_C, T0);

    const batch = await store.createPayoutBatch({
      id: "batch-1",
      chain: "base",
      operators: [{ operatorId: OP_A, address: ADDR_A }, { operatorId: OP_B, address: ADDR_B }],
      minimum: 1_000_000,
      at: T0,
    });
    const earnedA = 850_000 + 525_000;
    expect(batch).toEqual({
      id: "batch-1",
      chain: "base",
      status: "created",
      total: earnedA,
      txHash: null,
      error: null,
      createdAt: T0,
      updatedAt: T0,
      items: [{ operatorId: OP_A, address: ADDR_A, amount: earnedA }],
    });
    expect(await balance(store, operatorAvailable(OP_A))).toBe(0);
    expect(await balance(store, payoutInFlight("batch-1"))).toBe(earnedA);
    expect(await balance(store, operatorAvailable(OP_B))).toBe(200_000);
    expect((await store.getReceipt(a1))!.payoutBatchId).toBe("batch-1");
    expect((await store.getReceipt(a2))!.payoutBatchId).toBe("batch-1");
    expect((await store.getReceipt(aHeld))!.payoutBatchId).toBeNull();
    expect((await store.getReceipt(b1))!.payoutBatchId).toBeNull();
    // The listed operators' requests are served (or refused for being under the minimum); another's stays.
    expect(await store.listPayoutRequests()).toEqual([{ operatorId: OP_C, requestedAt: T0 }]);

    // Nothing left to claim: no batch, and no empty batch row.
    expect(await store.createPayoutBatch({ id: "batch-2", chain: "base", operators: [{ operatorId: OP_A, address: ADDR_A }], minimum: 1, at: T0 })).toBeUndefined();
    expect(await store.getPayoutBatch("batch-2")).toBeUndefined();
    await expect(store.createPayoutBatch({ id: "batch-1", chain: "base", operators: [{ operatorId: OP_B, address: ADDR_B }], minimum: 1, at: T0 })).rejects.toMatchObject({ code: "conflict" });
    expect((await store.getReceipt(b1))!.payoutBatchId).toBeNull();
    await expectLedgerSound(store);
  });

  it("refuses bad batch input by name and changes nothing", async () => {
    await seedReceipt(store, OP_A, { amount: 2_000_000 });
    const bad = [
      { minimum: 0, operators: [{ operatorId: OP_A, address: ADDR_A }] },
      { minimum: 1.5, operators: [{ operatorId: OP_A, address: ADDR_A }] },
      { minimum: 1, operators: [{ operatorId: OP_A, address: ADDR_A }, { operatorId: OP_A, address: ADDR_B }] },
    ];
    for (const b of bad) {
      await expect(store.createPayoutBatch({ id: "bad", chain: "base", at: T0, ...b })).rejects.toMatchObject({ code: "bad_request" });
    }
    expect(await store.getPayoutBatch("bad")).toBeUndefined();
    expect(await balance(store, operatorAvailable(OP_A))).toBe(2_000_000);
  });

  it("submitted then confirmed: in-flight becomes paid, receipts are paid; confirming twice is a no-op and a confirmed batch cannot fail", async () => {
    const r = await seedReceipt(store, OP_A, { amount: 3_000_000, fee: 450_000 });
    await store.createPayoutBatch({ id: "b", chain: "base", operators: [{ operatorId: OP_A, address: ADDR_A }], minimum: 1_000_000, at: T0 });
    const later = new Date(T0.getTime() + 60_000);
    await store.markPayoutBatchSubmitted("b", "0xabc", later);
    expect(await store.getPayoutBatch("b")).toMatchObject({ status: "submitted", txHash: "0xabc", updatedAt: later });
    // A lost transaction sent again: the submitted batch takes the new hash.
    await store.markPayoutBatchSubmitted("b", "0xdef", later);
    expect(await store.confirmPayoutBatch("b", "0xdef", later)).toBe(true);
    expect(await store.getPayoutBatch("b")).toMatchObject({ status: "confirmed", txHash: "0xdef" });
    expect(await balance(store, operatorPaid(OP_A))).toBe(2_550_000);
    expect(await balance(store, payoutInFlight("b"))).toBe(0);
    expect((await store.getReceipt(r))!).toMatchObject({ status: "paid", payoutBatchId: "b", statusChangedAt: later });
    expect(await store.confirmPayoutBatch("b", "0xdef", later)).toBe(false);
    expect(await balance(store, operatorPaid(OP_A))).toBe(2_550_000);
    await expect(store.failPayoutBatch("b", "too late", later)).rejects.toMatchObject({ code: "conflict" });
    await expect(store.markPayoutBatchSubmitted("b", "0x123", later)).rejects.toMatchObject({ code: "conflict" });
    await expect(store.markPayoutBatchSubmitted("nope", "0x123", later)).rejects.toMatchObject({ code: "not_found" });
    await expect(store.confirmPayoutBatch("nope", "0x123", later)).rejects.toMatchObject({ code: "not_found" });
    await expect(store.failPayoutBatch("nope", "x", later)).rejects.toMatchObject({ code: "not_found" });
    await expectLedgerSound(store);
  });

  it("a failed batch returns its money to available and frees its receipts for the next batch; it cannot be confirmed", async () => {
    const r = await seedReceipt(store, OP_A, { amount: 1_500_000 });
    await store.createPayoutBatch({ id: "f", chain: "base", operators: [{ operatorId: OP_A, address: ADDR_A }], minimum: 1_000_000, at: T0 });
    expect(await store.failPayoutBatch("f", "reverted: the vault holds too little", T0)).toBe(true);
    expect(await store.getPayoutBatch("f")).toMatchObject({ status: "failed", error: "reverted: the vault holds too little" });
    expect(await store.failPayoutBatch("f", "again", T0)).toBe(false);
    expect(await balance(store, operatorAvailable(OP_A))).toBe(1_500_000);
    expect(await balance(store, payoutInFlight("f"))).toBe(0);
    expect((await store.getReceipt(r))!).toMatchObject({ status: "available", payoutBatchId: null });
    await expect(store.confirmPayoutBatch("f", "0x1", T0)).rejects.toMatchObject({ code: "conflict" });

    const again = await store.createPayoutBatch({ id: "g", chain: "base", operators: [{ operatorId: OP_A, address: ADDR_A }], minimum: 1_000_000, at: T0 });
    expect(again?.items).toEqual([{ operatorId: OP_A, address: ADDR_A, amount: 1_500_000 }]);
    expect((await store.getReceipt(r))!.payoutBatchId).toBe("g");
    await expectLedgerSound(store);
  });

  it("lists batches oldest first, by status and by operator; refuses a bad limit or status", async () => {
    await seedReceipt(store, OP_A, { amount: 1_000_000 });
    await store.createPayoutBatch({ id: "1", chain: "base", operators: [{ operatorId: OP_A, address: ADDR_A }], minimum: 1, at: T0 });
    await seedReceipt(store, OP_B, { amount: 1_000_000 });
    await store.createPayoutBatch({ id: "2", chain: "polygon", operators: [{ operatorId: OP_B, address: ADDR_B }], minimum: 1, at: new Date(T0.getTime() + 1) });
    await store.markPayoutBatchSubmitted("2", "0x2", T0);
    expect((await store.listPayoutBatches({ limit: 10 })).map((b) => b.id)).toEqual(["1", "2"]);
    expect((await store.listPayoutBatches({ status: ["submitted"], limit: 10 })).map((b) => b.id)).toEqual(["2"]);
    expect((await store.listPayoutBatches({ status: ["created", "submitted"], limit: 1 })).map((b) => b.id)).toEqual(["1"]);
    expect(await store.listPayoutBatches({ status: [], limit: 10 })).toEqual([]);
    const ofB = await store.listPayoutBatches({ operatorId: OP_B, limit: 10 });
    expect(ofB.map((b) => [b.id, b.items])).toEqual([["2", [{ operatorId: OP_B, address: ADDR_B, amount: 1_000_000 }]]]);
    await expect(store.listPayoutBatches({ limit: 0 })).rejects.toMatchObject({ code: "bad_request" });
    await expect(store.listPayoutBatches({ limit: 1001 })).rejects.toMatchObject({ code: "bad_request" });
    await expect(store.listPayoutBatches({ status: ["nope" as "created"], limit: 1 })).rejects.toMatchObject({ code: "bad_request" });
  });

  it("two batches made at once never claim the same receipt or move the same money twice", async () => {
    for (let i = 0; i < 5; i++) await seedReceipt(store, OP_A, { amount: 400_000 });
    const made = await Promise.all(
      ["x", "y", "z"].map((id) => store.createPayoutBatch({ id, chain: "base", operators: [{ operatorId: OP_A, address: ADDR_A }], minimum: 1, at: T0 })),
    );
    const totals = made.filter((b) => b !== undefined).map((b) => b.total);
    expect(totals.reduce((s, t) => s + t, 0)).toBe(2_000_000);
    expect(await balance(store, operatorAvailable(OP_A))).toBe(0);
    await expectLedgerSound(store);
  });
}

await describeOnBothDialects("payout queries", definePayoutSuite);
