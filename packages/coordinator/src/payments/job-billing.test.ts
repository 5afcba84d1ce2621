import { describe, expect, it } from "vitest";
import { secretKeySigner } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { REWARD_POOL, clientCredit, clientEscrow } from "../store/ledger-accounts.js";
import { openStore } from "../store/open-store.js";
import { JobBilling } from "./job-billing.js";
import { fundRewardPool, topUp } from "./ledger-rules.js";
import { PriceTable } from "./prices.js";

const OWNER = "key:k1";
const NODE = "1".repeat(64);

async function setUp() {
  const store = await openStore({ sqlitePath: ":memory:" });
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const billing = () =>
    new JobBilling({
      store,
      prices: new PriceTable({ input_per_1k: 1_000, output_per_1k: 4_000, reward_input_per_1k: 0, reward_output_per_1k: 0 }),
      feeBps: 1500,
      holdMs: 3_600_000,
      platform: secretKeySigner("7".repeat(64)),
      nodes: { operatorOf: async (id) => id, modelSha256: () => null, modelSizeBytes: () => undefined },
      clock,
      logger: createLogger("silent"),
    });
  await store.postTransaction(topUp(OWNER, 1_000_000, "test", new Date(clock.now())));
  return { store, clock, billing };
}

function job(id: string) {
  return { id, ownerId: OWNER, model: "m", messages: [{ role: "user" as const, content: "hello" }], sampling: { temperature: 0, top_p: 1, max_tokens: 50 } };
}

describe("JobBilling.reconcile after a restart", () => {
  it("settles a job that completed before its settlement landed, refunds one that failed, and leaves a running one", async () => {
    const { store, clock, billing } = await setUp();
    const before = billing();
    for (const id of ["done", "failed", "running"]) {
      await before.open(job(id));
      await store.insertJob({ ...job(id), promptSha256: "0".repeat(64), createdAt: new Date(clock.now()), status: "processing" });
    }
    await store.addJobSegment({ jobId: "done", nodeId: NODE, completionTokens: 10, startedAt: new Date(clock.now()), endedAt: new Date(clock.now()) });
    await store.updateJob("done", { status: "completed", outputSha256: "a".repeat(64), promptTokens: 5, completionTokens: 10, completedAt: new Date(clock.now()) });
    await store.updateJob("failed", { status: "failed", error: "timeout", completedAt: new Date(clock.now()) });

    // The process that held the escrows is gone; a new one reconciles from the store alone.
    const after = billing();
    expect(await after.reconcile()).toBe(2);
    const [receipt] = await store.listReceipts({ jobId: "done", limit: 5 });
    // 5 prompt tokens at 1,000 per 1K (5) and 10 completion tokens at 4,000 per 1K (40).
    expect(receipt).toMatchObject({ input_tokens: 5, output_tokens: 10, amount: 45, fee: 6, status: "held" });
    expect((await store.openEscrows({ limit: 10 })).map((e) => e.jobId)).toEqual(["running"]);
    const balances = await store.getBalances([clientCredit(OWNER), clientEscrow(OWNER)]);
    const running = (await store.openEscrows({ jobId: "running", limit: 1 }))[0]!.amount;
    expect(balances.get(clientEscrow(OWNER))).toBe(running);
    expect(balances.get(clientCredit(OWNER))).toBe(1_000_000 - 45 - running);
    // Reconciling again changes nothing.
    expect(await after.reconcile()).toBe(0);
    expect(await store.auditLedger()).toMatchObject({ sum: 0, negative: [], unbalanced: [], drifted: [] });
    await store.close();
  });

  it("refuses a job the credit cannot cover and holds nothing", async () => {
    const { store, billing } = await setUp();
    const b = billing();
    const big = { ...job("big"), sampling: { temperature: 0, top_p: 1, max_tokens: 1_000_000 } };
    await expect(b.open(big)).rejects.toMatchObject({ code: "insufficient_funds" });
    expect(await store.openEscrows({ limit: 10 })).toEqual([]);
    expect((await store.getBalances([clientCredit(OWNER)])).get(clientCredit(OWNER))).toBe(1_000_000);
    await store.close();
  });
});

describe("JobBilling rewards", () => {
  it("settles two jobs racing for a pool that covers one: the first gets its reward, the second settles without", async () => {
    const store = await openStore({ sqlitePath: ":memory:" });
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const billing = new JobBilling({
      store,
      prices: new PriceTable({ input_per_1k: 0, output_per_1k: 0, reward_input_per_1k: 0, reward_output_per_1k: 100_000 }),
      feeBps: 1500,
      holdMs: 3_600_000,
      platform: secretKeySigner("7".repeat(64)),
      nodes: { operatorOf: async (id) => id, modelSha256: () => null, modelSizeBytes: () => undefined },
      clock,
      logger: createLogger("silent"),
    });
    // 10 completion tokens at 100,000 per 1K: a reward of 1,000 each; the pool holds 1,500.
    await store.postTransaction(fundRewardPool(1_500, "owner", new Date(clock.now())));
    const done = (id: string) => ({ id, ownerId: OWNER, model: "m", promptTokens: 0, outputSha256: "a".repeat(64), completedAt: clock.now(), segments: [{ nodeId: NODE, completionTokens: 10 }] });
    // Both read the pool before either settles, and are written in one group that the pool cannot cover.
    const [first, second] = await Promise.all([billing.settle(done("j1")), billing.settle(done("j2"))]);
    expect([first![0]!.reward, second![0]!.reward].sort()).toEqual([0, 1_000]);
    expect((await store.getBalances([REWARD_POOL])).get(REWARD_POOL)).toBe(500);
    expect(await store.auditLedger()).toMatchObject({ sum: 0, negative: [], unbalanced: [], drifted: [] });
    await store.close();
  });
});
