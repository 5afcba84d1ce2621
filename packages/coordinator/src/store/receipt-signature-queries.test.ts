import { expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { seedReceipt } from "./payout-queries.test-support.js";
import { type OpenTestStore, describeOnBothDialects, storeEachTest } from "./postgres-test-support.js";
import { RECEIPT_BATCH_LIMIT } from "./receipt-queries.js";
import type { Store } from "./types.js";

const A = "a".repeat(64);
const UNKNOWN = "6f1c1a52-3b8e-4c1e-9a55-999999999999";
const sig = (c: string) => c.repeat(128);

/** Reading receipts together and storing nodes' signatures on them together (ReceiptSignatures' batches). */
function defineSuite(open: OpenTestStore): void {
  let store: Store;
  storeEachTest(open, (opened) => (store = opened));

  it("reads the receipts of the ids that exist, and none for none", async () => {
    const ids = [await seedReceipt(store, A, { amount: 10 }), await seedReceipt(store, A, { amount: 20 })];
    expect(await store.getReceipts([])).toEqual([]);
    const read = await store.getReceipts([...ids, UNKNOWN]);
    expect(read.map((r) => r.receipt_id).sort()).toEqual([...ids].sort());
    expect(read.find((r) => r.receipt_id === ids[1])).toEqual(await store.getReceipt(ids[1]!));
  });

  it("stores each signature on its unsigned receipt in one call, and returns only the ids it stored", async () => {
    const [signed, fresh1, fresh2] = [await seedReceipt(store, A, { amount: 1 }), await seedReceipt(store, A, { amount: 2 }), await seedReceipt(store, A, { amount: 3 })];
    expect(await store.setReceiptNodeSignatures([{ id: signed!, signature: sig("1") }])).toEqual([signed]);
    const stored = await store.setReceiptNodeSignatures([
      { id: signed!, signature: sig("2") },
      { id: fresh1!, signature: sig("3") },
      { id: UNKNOWN, signature: sig("4") },
      { id: fresh2!, signature: sig("5") },
    ]);
    expect(stored.sort()).toEqual([fresh1, fresh2].sort());
    expect((await store.getReceipt(signed!))!.node_signature).toBe(sig("1"));
    expect((await store.getReceipt(fresh1!))!.node_signature).toBe(sig("3"));
    expect((await store.getReceipt(fresh2!))!.node_signature).toBe(sig("5"));
    expect(await store.setReceiptNodeSignatures([])).toEqual([]);
  });

  it.each<[string, (id: string) => Array<{ id: string; signature: string }>]>([
    ["a signature that is not 128 hex digits", (id) => [{ id, signature: "ab" }]],
    ["upper-case hex", (id) => [{ id, signature: sig("A") }]],
    ["an id given twice", (id) => [{ id, signature: sig("1") }, { id, signature: sig("2") }]],
    ["more than the batch limit", (id) => Array.from({ length: RECEIPT_BATCH_LIMIT + 1 }, (_, i) => ({ id: i === 0 ? id : `${UNKNOWN}-${i}`, signature: sig("1") }))],
  ])("refuses %s with bad_request and stores nothing", async (_name, make) => {
    const id = await seedReceipt(store, A, { amount: 1 });
    const err = await store.setReceiptNodeSignatures(make(id)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe("bad_request");
    expect((await store.getReceipt(id))!.node_signature).toBeNull();
  });

  it("refuses to read more than the batch limit at once", async () => {
    const err = await store.getReceipts(Array.from({ length: RECEIPT_BATCH_LIMIT + 1 }, (_, i) => `${UNKNOWN}-${i}`)).catch((e: unknown) => e);
    expect((err as TesseraError).code).toBe("bad_request");
  });
}

await describeOnBothDialects("receipt signatures in batches", defineSuite);
