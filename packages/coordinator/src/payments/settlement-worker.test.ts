import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { operatorAvailable, operatorPaid } from "../store/ledger-accounts.js";
import { openStore } from "../store/open-store.js";
import { balanceOf, expectLedgerSound, seedReceipt } from "../store/payout-queries.test-support.js";
import type { Store } from "../store/types.js";
import { type SettlementChain, SettlementWorker, type SettlementWorkerOptions, type WorkerLogger } from "./settlement-worker.js";

const OP_A = "a".repeat(64);
const OP_B = "b".repeat(64);
const OP_C = "c".repeat(64);
const ADDR = { a: "0x00000000000000000000000000000000000000aa", b: "0x00000000000000000000000000000000000000bb", c: "0x00000000000000000000000000000000000000cc" };
const USDC = 1_000_000;

type Tx = { batchId: string; recipients: readonly string[]; amounts: readonly number[]; state: "pending" | "success" | "reverted" };
type Step = "settle" | "wait" | "isSettled" | "find";

/**
 * A payout vault in memory with the real one's rules: a batch id settles once (a second transaction for it reverts, and
 * a send that would revert is refused before it is sent, as the node's simulation does), and a transaction is mined
 * when someone waits for it (or at once with `autoMine`). Faults are queued per step.
 */
class FakeVault implements SettlementChain {
  maxRecipients = 200;
  autoMine = true;
  readonly settled = new Map<string, string>();
  readonly txs = new Map<string, Tx>();
  readonly paid = new Map<string, number>();
  readonly faults: Array<{ step: Step; error: Error; afterSend?: boolean }> = [];
  /** The next settle's transaction reverts without settling (e.g. the vault ran dry between simulation and mining). */
  revertNext = false;
  sends = 0;

  private fault(step: Step, afterSend = false): void {
    const i = this.faults.findIndex((f) => f.step === step && (f.afterSend ?? false) === afterSend);
    if (i >= 0) throw this.faults.splice(i, 1)[0]!.error;
  }

  async settle(batchId: string, recipients: readonly string[], amounts: readonly number[]): Promise<string> {
    this.fault("settle");
    if (this.settled.has(batchId)) throw new TesseraError("conflict", `settle batch ${batchId}: this batch is already settled on-chain`);
    const hash = `0x${(++this.sends).toString(16).padStart(64, "0")}`;
    this.txs.set(hash, { batchId, recipients, amounts, state: this.revertNext ? "reverted" : "pending" });
    this.revertNext = false;
    if (this.autoMine) this.mineAll();
    this.fault("settle", true); // the process dies after the transaction left
    return hash;
  }

  mineAll(): void {
    for (const tx of this.txs.values()) {
      if (tx.state !== "pending") continue;
      if (this.settled.has(tx.batchId)) {
        tx.state = "reverted";
        continue;
      }
      tx.recipients.forEach((r, i) => this.paid.set(r, (this.paid.get(r) ?? 0) + tx.amounts[i]!));
      this.settled.set(tx.batchId, [...this.txs.entries()].find(([, t]) => t === tx)![0]);
      tx.state = "success";
    }
  }

  async waitForReceipt(hash: string): Promise<{ status: "success" | "reverted" }> {
    this.fault("wait");
    this.mineAll();
    const tx = this.txs.get(hash);
    if (!tx) throw new TesseraError("internal_error", `no transaction ${hash}`);
    return { status: tx.state === "success" ? "success" : "reverted" };
  }

  async isSettled(batchId: string): Promise<boolean> {
    this.fault("isSettled");
    return this.settled.has(batchId);
  }

  async findSettlementTx(batchId: string): Promise<string | undefined> {
    this.fault("find");
    return this.settled.get(batchId);
  }
}

const silent: WorkerLogger = { info() {}, warn() {}, error() {} };

let store: Store;
let clock: ManualClock;
let vault: FakeVault;
beforeEach(async () => {
  store = await openStore({ sqlitePath: ":memory:" });
  clock = new ManualClock(Date.UTC(2026, 5, 10, 12));
  vault = new FakeVault();
});
afterEach(async () => {
  await store.close();
});

function worker(overrides: Partial<SettlementWorkerOptions> = {}): SettlementWorker {
  let n = 0;
  return new SettlementWorker({
    store,
    chains: [{ name: "base", chain: vault }],
    schedule: "daily",
    threshold: 0,
    confirmations: 1,
    clock,
    logger: silent,
    newBatchId: () => `batch-${clock.now()}-${++n}-${Math.random().toString(36).slice(2, 8)}`,
    ...overrides,
  });
}

async function earn(operatorId: string, micro: number, address?: string, chain = "base"): Promise<void> {
  await seedReceipt(store, operatorId, { amount: micro });
  if (address) await store.setPayoutAddress({ operatorId, chain, address, updatedAt: new Date(clock.now()) });
}

/** Paid exactly once: the chain paid what the ledger says was paid out, and nothing is left in flight. */
async function expectPaidOnce(operatorId: string, address: string, micro: number): Promise<void> {
  expect(vault.paid.get(address) ?? 0).toBe(micro);
  expect(await balanceOf(store, operatorPaid(operatorId))).toBe(micro);
  expect(await store.listPayoutBatches({ status: ["created", "submitted"], limit: 10 })).toEqual([]);
  await expectLedgerSound(store);
}

describe("settlement worker: making batches", () => {
  it("auto-payout pays, once a day, each operator at or above the minimum whose first address is on this chain", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    await earn(OP_B, USDC / 2, ADDR.b); // below Base's 1 USDC minimum
    await earn(OP_C, 3 * USDC, ADDR.c, "polygon"); // another chain
    const w = worker();
    const [report] = await w.runOnce();
    expect(report).toMatchObject({ chain: "base", failed: [], pending: [] });
    expect(report!.confirmed).toHaveLength(1);
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
    expect(vault.paid.has(ADDR.b)).toBe(false);
    expect(vault.paid.has(ADDR.c)).toBe(false);
    const [batch] = await store.listPayoutBatches({ limit: 10 });
    expect(batch).toMatchObject({ status: "confirmed", chain: "base", total: 2 * USDC, txHash: vault.settled.get(batch!.id) });
    expect((await store.listReceipts({ operatorId: OP_A, limit: 10 })).map((r) => r.status)).toEqual(["paid"]);

    // More earnings the same day wait for tomorrow's run.
    await earn(OP_A, 4 * USDC);
    clock.advance(3_600_000);
    expect((await w.runOnce())[0]!.confirmed).toEqual([]);
    expect(await balanceOf(store, operatorAvailable(OP_A))).toBe(4 * USDC);
    clock.advance(24 * 3_600_000);
    expect((await w.runOnce())[0]!.confirmed).toHaveLength(1);
    await expectPaidOnce(OP_A, ADDR.a, 6 * USDC);
  });

  it("an explicit request is paid at the next pass whatever the schedule; the threshold only gates auto-payout", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    await earn(OP_B, 2 * USDC, ADDR.b);
    const w = worker({ schedule: "daily", threshold: 5 * USDC });
    expect((await w.runOnce())[0]!.confirmed).toEqual([]);
    await store.requestPayout(OP_B, new Date(clock.now()));
    await w.runOnce();
    expect(vault.paid.get(ADDR.b)).toBe(2 * USDC);
    expect(vault.paid.has(ADDR.a)).toBe(false);
    expect(await store.listPayoutRequests()).toEqual([]);

    const off = worker({ schedule: "off" });
    await off.runOnce();
    expect(vault.paid.has(ADDR.a)).toBe(false);
  });

  it("pays to the most recently set address: an operator who moved to polygon is not paid on base", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a, "base");
    clock.advance(1000);
    await store.setPayoutAddress({ operatorId: OP_A, chain: "polygon", address: ADDR.b, updatedAt: new Date(clock.now()) });
    await worker().runOnce();
    expect(vault.sends).toBe(0);
    expect(await balanceOf(store, operatorAvailable(OP_A))).toBe(2 * USDC);
  });

  it("splits operators into batches of the vault's recipient limit", async () => {
    vault.maxRecipients = 2;
    await earn(OP_A, 1 * USDC, ADDR.a);
    await earn(OP_B, 2 * USDC, ADDR.b);
    await earn(OP_C, 3 * USDC, ADDR.c);
    const [report] = await worker().runOnce();
    expect(report!.confirmed).toHaveLength(2);
    expect(vault.sends).toBe(2);
    await expectPaidOnce(OP_C, ADDR.c, 3 * USDC);
    expect(vault.paid.get(ADDR.a)).toBe(USDC);
  });

  it("refuses bad settings by name", () => {
    expect(() => worker({ confirmations: 0 })).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(() => worker({ threshold: -1 })).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(() => worker({ chains: [{ name: "base", chain: vault }, { name: "base", chain: vault }] })).toThrow(expect.objectContaining({ code: "bad_request" }));
  });
});

describe("settlement worker: crashes and faults never pay twice", () => {
  it("killed after sending, before recording the hash: the next process finds the batch settled and records that transaction", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.faults.push({ step: "settle", afterSend: true, error: new Error("process killed") });
    const [first] = await worker().runOnce();
    expect(first!.error).toBe("process killed");
    const [open] = await store.listPayoutBatches({ limit: 10 });
    expect(open).toMatchObject({ status: "created", txHash: null });

    const [second] = await worker().runOnce(); // a fresh process
    expect(second!.confirmed).toEqual([open!.id]);
    expect(vault.sends).toBe(1);
    expect(await store.getPayoutBatch(open!.id)).toMatchObject({ status: "confirmed", txHash: vault.settled.get(open!.id) });
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("killed after sending while the transaction is still pending: the resend is refused on chain and the first transaction is recorded", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.autoMine = false;
    vault.faults.push({ step: "settle", afterSend: true, error: new Error("process killed") });
    await worker().runOnce();
    const [open] = await store.listPayoutBatches({ limit: 10 });
    const firstTx = [...vault.txs.keys()][0]!;

    const [second] = await worker().runOnce(); // not settled yet, so it sends again; mining settles the first and reverts the second
    expect(vault.sends).toBe(2);
    expect(second!.confirmed).toEqual([open!.id]);
    expect(await store.getPayoutBatch(open!.id)).toMatchObject({ status: "confirmed", txHash: firstTx });
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("died before sending (RPC down): the batch stays created and is sent on the next pass", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.faults.push({ step: "settle", error: new TesseraError("unreachable", "the RPC did not answer") });
    const [first] = await worker().runOnce();
    expect(first).toMatchObject({ confirmed: [], error: "the RPC did not answer" });
    expect(first!.pending).toHaveLength(1);
    expect(await balanceOf(store, operatorAvailable(OP_A))).toBe(0); // in flight, not available to a second batch

    const [second] = await worker().runOnce();
    expect(second!.confirmed).toEqual(first!.pending);
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("died after recording the hash, before the confirmation: the next pass confirms without sending", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.faults.push({ step: "wait", error: new TesseraError("unreachable", "the RPC did not answer") });
    await worker().runOnce();
    const [open] = await store.listPayoutBatches({ limit: 10 });
    expect(open).toMatchObject({ status: "submitted" });
    await worker().runOnce();
    expect(vault.sends).toBe(1);
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("a transaction dropped from the mempool: the batch is waited on, then sent again once it is stale, and paid once", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.autoMine = false;
    vault.faults.push({ step: "wait", error: new TesseraError("unreachable", "the RPC did not answer") });
    await worker().runOnce();
    const [open] = await store.listPayoutBatches({ limit: 10 });
    expect(open).toMatchObject({ status: "submitted" });
    vault.txs.delete(open!.txHash!); // dropped: no node knows it any more

    clock.advance(60_000);
    const [waiting] = await worker().runOnce();
    expect(waiting).toMatchObject({ pending: [open!.id], error: expect.stringContaining("no transaction") });
    expect(vault.sends).toBe(1);

    clock.advance(30 * 60_000);
    const [resent] = await worker().runOnce();
    expect(resent!.confirmed).toEqual([open!.id]);
    expect(vault.sends).toBe(2);
    expect(await store.getPayoutBatch(open!.id)).toMatchObject({ status: "confirmed", txHash: vault.settled.get(open!.id) });
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("a batch settled by someone else in between (another replica) is recorded, not sent again", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.faults.push({ step: "settle", error: new TesseraError("unreachable", "the RPC did not answer") });
    await worker().runOnce();
    const [open] = await store.listPayoutBatches({ limit: 10 });
    // The other replica sends it; the chain refuses this process's own attempt as already settled.
    await vault.settle(open!.id, open!.items.map((i) => i.address), open!.items.map((i) => i.amount));
    vault.faults.push({ step: "isSettled", error: new TesseraError("unreachable", "blip") });
    const [blip] = await worker().runOnce();
    expect(blip!.error).toBe("blip");
    const [second] = await worker().runOnce();
    expect(second!.confirmed).toEqual([open!.id]);
    expect(vault.sends).toBe(1);
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("a transaction that reverts without settling fails the batch; its money is available again and the next pass pays it", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    vault.revertNext = true;
    const [first] = await worker().runOnce();
    expect(first!.failed).toHaveLength(1);
    expect(await store.getPayoutBatch(first!.failed[0]!)).toMatchObject({ status: "failed", error: expect.stringContaining("reverted") });
    expect(await balanceOf(store, operatorAvailable(OP_A))).toBe(2 * USDC);
    expect(vault.paid.size).toBe(0);

    await store.requestPayout(OP_A, new Date(clock.now()));
    const [second] = await worker().runOnce();
    expect(second!.confirmed).toHaveLength(1);
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });

  it("one chain's RPC being down does not stop another chain's payouts; new batches wait while one is unfinished", async () => {
    const polygon = new FakeVault();
    await earn(OP_A, 2 * USDC, ADDR.a, "base");
    await earn(OP_B, 2 * USDC, ADDR.b, "polygon");
    vault.faults.push({ step: "wait", error: new TesseraError("unreachable", "base RPC down") });
    const w = worker({ chains: [{ name: "base", chain: vault }, { name: "polygon", chain: polygon }] });
    const [base, poly] = await w.runOnce();
    expect(base).toMatchObject({ error: "base RPC down" });
    expect(poly!.confirmed).toHaveLength(1);
    expect(polygon.paid.get(ADDR.b)).toBe(2 * USDC);

    await earn(OP_A, 5 * USDC); // while base has a batch in flight: not batched yet
    await store.requestPayout(OP_A, new Date(clock.now()));
    vault.faults.push({ step: "wait", error: new TesseraError("unreachable", "base RPC down") });
    await w.runOnce();
    expect(vault.sends).toBe(1);
    await w.runOnce();
    expect(vault.sends).toBe(2);
    await expectPaidOnce(OP_A, ADDR.a, 7 * USDC);
  });

  it("passes never overlap: a second runOnce while one runs joins it", async () => {
    await earn(OP_A, 2 * USDC, ADDR.a);
    const w = worker();
    const [one, two] = await Promise.all([w.runOnce(), w.runOnce()]);
    expect(one).toBe(two);
    await expectPaidOnce(OP_A, ADDR.a, 2 * USDC);
  });
});
