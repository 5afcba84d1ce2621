import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TesseraError, secretKeySigner, verifyReceipt } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { operatorAvailable } from "../store/ledger-accounts.js";
import { openStore } from "../store/open-store.js";
import { POSTGRES_URL, describeWithPostgres, dropSchema, probePostgres, randomSchema } from "../store/postgres-test-support.js";
import type { Store } from "../store/types.js";
import { EarningsSweep } from "./earnings-sweep.js";
import { JobBilling } from "./job-billing.js";
import { earnedBy, fundRewardPool, topUp } from "./ledger-rules.js";
import { PriceTable } from "./prices.js";

/**
 * Must-show 1 of the payments issue: random sequences of top-up, submit, complete, fail, failover (a completion over
 * several segments), forfeit, release and payout (confirmed or failed), with repeats of the same event, keep every
 * balance but `world` at or above zero, every transaction and the whole ledger summing to zero, every stored balance
 * equal to the sum of its entries, and each operator's available balance equal to its unpaid available receipts.
 */

const NODES = ["1", "2", "3"].map((c) => c.repeat(64));
const OPERATOR_OF: Record<string, string> = { [NODES[0]!]: "a".repeat(64), [NODES[1]!]: "a".repeat(64), [NODES[2]!]: "b".repeat(64) };
const CLIENTS = ["key:client-1", "key:client-2"];
const HOUR = 3_600_000;

type Op =
  | { t: "topup"; client: number; usdc: number }
  | { t: "pool"; usdc: number }
  | { t: "submit"; client: number; chars: number; maxTokens: number }
  | { t: "complete"; job: number; promptTokens: number; segments: Array<{ node: number; share: number }> }
  | { t: "fail"; job: number }
  | { t: "again"; job: number }
  | { t: "quarantine"; node: number }
  | { t: "wait"; hours: number }
  | { t: "payout"; operator: number; outcome: "confirm" | "fail" };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant("topup" as const), client: fc.nat(1), usdc: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ t: fc.constant("pool" as const), usdc: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ t: fc.constant("submit" as const), client: fc.nat(1), chars: fc.integer({ min: 1, max: 4000 }), maxTokens: fc.integer({ min: 1, max: 4000 }) }),
  fc.record({ t: fc.constant("submit" as const), client: fc.nat(1), chars: fc.integer({ min: 1, max: 200 }), maxTokens: fc.integer({ min: 1, max: 300 }) }),
  fc.record({
    t: fc.constant("complete" as const),
    job: fc.nat(30),
    promptTokens: fc.integer({ min: 0, max: 5000 }),
    segments: fc.array(fc.record({ node: fc.nat(2), share: fc.double({ min: 0, max: 1, noNaN: true }) }), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ t: fc.constant("fail" as const), job: fc.nat(30) }),
  fc.record({ t: fc.constant("again" as const), job: fc.nat(30) }),
  fc.record({ t: fc.constant("quarantine" as const), node: fc.nat(2) }),
  fc.record({ t: fc.constant("wait" as const), hours: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ t: fc.constant("payout" as const), operator: fc.nat(1), outcome: fc.constantFrom("confirm" as const, "fail" as const) }),
);

interface OpenJob {
  id: string;
  ownerId: string;
  maxTokens: number;
  ended?: "settled" | "refunded";
  completion?: Parameters<JobBilling["settle"]>[0];
}

async function runSequence(store: Store, ops: readonly Op[]): Promise<void> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const platform = secretKeySigner("7".repeat(64));
  const quarantined = new Set<string>();
  const billing = new JobBilling({
    store,
    prices: new PriceTable({ input_per_1k: 150, output_per_1k: 600, reward_input_per_1k: 10, reward_output_per_1k: 40 }),
    feeBps: 1500,
    holdMs: 24 * HOUR,
    platform,
    nodes: { operatorOf: async (id) => OPERATOR_OF[id]!, modelSha256: () => null, modelSizeBytes: () => undefined },
    clock,
    logger: createLogger("silent"),
  });
  const sweep = new EarningsSweep({ store, clock, logger: createLogger("silent"), quarantinedNodes: () => quarantined });
  const jobs: OpenJob[] = [];
  const at = () => new Date(clock.now());
  for (const o of ops) {
    switch (o.t) {
      case "topup":
        await store.postTransaction(topUp(CLIENTS[o.client]!, o.usdc * 1e6, "test", at()));
        break;
      case "pool":
        if (o.usdc > 0) await store.postTransaction(fundRewardPool(o.usdc * 1e6, "test", at()));
        break;
      case "submit": {
        const job = { id: randomUUID(), ownerId: CLIENTS[o.client]!, model: "m", messages: [{ role: "user" as const, content: "x".repeat(o.chars) }], sampling: { temperature: 0, top_p: 1, max_tokens: o.maxTokens } };
        try {
          await billing.open(job);
          jobs.push({ id: job.id, ownerId: job.ownerId, maxTokens: o.maxTokens });
        } catch (err) {
          if (!(err instanceof TesseraError && err.code === "insufficient_funds")) throw err;
        }
        break;
      }
      case "complete": {
        const job = jobs[o.job % Math.max(1, jobs.length)];
        if (!job || job.ended) break;
        // Credited tokens never exceed the budget (honest-usage.ts): the segments split at most max_tokens.
        let left = job.maxTokens;
        const segments = o.segments.map((s) => {
          const tokens = Math.floor(left * s.share);
          left -= tokens;
          return { nodeId: NODES[s.node]!, completionTokens: tokens };
        });
        job.completion = { id: job.id, ownerId: job.ownerId, model: "m", promptTokens: o.promptTokens, outputSha256: "0".repeat(64), completedAt: clock.now(), segments };
        await billing.settle(job.completion);
        job.ended = "settled";
        break;
      }
      case "fail": {
        const job = jobs[o.job % Math.max(1, jobs.length)];
        if (!job || job.ended) break;
        await billing.refund(job);
        job.ended = "refunded";
        break;
      }
      case "again": {
        // The same end posted twice (a retry, a second replica, a restart's reconcile) moves nothing.
        const job = jobs[o.job % Math.max(1, jobs.length)];
        if (!job?.ended) break;
        if (job.completion) expect(await billing.settle(job.completion)).toEqual([]);
        else await billing.refund(job);
        // Nor does the other end: a job is closed once.
        if (job.completion) await billing.refund(job);
        break;
      }
      case "quarantine":
        quarantined.add(NODES[o.node]!);
        await sweep.run();
        break;
      case "wait":
        clock.advance(o.hours * HOUR);
        await sweep.run();
        break;
      case "payout": {
        const operatorId = Object.values(OPERATOR_OF)[o.operator === 0 ? 0 : 2]!;
        const batch = await store.createPayoutBatch({ id: randomUUID(), chain: "base", operators: [{ operatorId, address: `0x${"ab".repeat(20)}` }], minimum: 1, at: at() });
        if (!batch) break;
        if (o.outcome === "confirm") await store.confirmPayoutBatch(batch.id, `0x${"cd".repeat(32)}`, at());
        else await store.failPayoutBatch(batch.id, "reverted", at());
        break;
      }
    }
  }
  const audit = await store.auditLedger();
  expect(audit.negative).toEqual([]);
  expect(audit.unbalanced).toEqual([]);
  expect(audit.drifted).toEqual([]);
  expect(audit.sum).toBe(0);
  // Each client's escrow holds exactly what its jobs not yet closed were held at.
  const open = await store.openEscrows({ limit: 100_000 });
  const escrowed = (await store.listBalances("client:")).filter((b) => b.account.endsWith(":escrow")).reduce((sum, b) => sum + b.balance, 0);
  expect(escrowed).toBe(open.reduce((sum, e) => sum + e.amount, 0));
  expect(new Set(open.map((e) => e.jobId))).toEqual(new Set(jobs.filter((j) => !j.ended).map((j) => j.id)));
  for (const operatorId of new Set(Object.values(OPERATOR_OF))) {
    const unpaid = (await store.listReceipts({ operatorId, status: "available", limit: 1000 })).filter((r) => r.payoutBatchId === null);
    const available = (await store.getBalances([operatorAvailable(operatorId)])).get(operatorAvailable(operatorId));
    expect(available).toBe(unpaid.reduce((sum, r) => sum + earnedBy(r), 0));
  }
  for (const { holdUntil: _h, statusChangedAt: _s, payoutBatchId: _p, ...receipt } of await store.listReceipts({ limit: 1000 })) {
    expect(verifyReceipt(receipt, { platformKey: platform.publicKeyHex, allowUnsignedByNode: true }).problems).toEqual([]);
  }
}

describe("ledger properties on SQLite", () => {
  it("random sequences keep every balance ≥ 0 and every sum zero", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 60 }), async (ops) => {
        const store = await openStore({ sqlitePath: ":memory:" });
        try {
          await runSequence(store, ops);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});

const unreachable = await probePostgres();
describeWithPostgres("ledger properties on PostgreSQL", unreachable, () => {
  const schemas: string[] = [];
  beforeAll(() => undefined);
  afterAll(async () => {
    for (const schema of schemas) await dropSchema(schema);
  });
  it("random sequences keep every balance ≥ 0 and every sum zero", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const schema = randomSchema();
        schemas.push(schema);
        const store = await openStore({ postgresUrl: POSTGRES_URL, schema });
        try {
          await runSequence(store, ops);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 15 },
    );
  }, 180_000);
});
