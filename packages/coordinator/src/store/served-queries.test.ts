import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import { RECEIPT_VERSION, type Receipt } from "@tessera/protocol";
import { SEED_AT, seedReceipt } from "./payout-queries.test-support.js";
import { type OpenTestStore, describeOnBothDialects, storeEachTest } from "./postgres-test-support.js";
import type { Store } from "./types.js";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

function defineServedSuite(open: OpenTestStore): void {
  let store: Store;
  storeEachTest(open, (opened) => (store = opened));

  it("counts each node's jobs from its receipts, whatever their status, and 0 for a node with none", async () => {
    expect(await store.countJobsServed([])).toEqual(new Map());
    await seedReceipt(store, A, { amount: 1000 });
    await seedReceipt(store, A, { amount: 1000 }, "held");
    await seedReceipt(store, B, { amount: 0 });
    expect(await store.countJobsServed([A, B, C])).toEqual(new Map([[A, 2], [B, 1], [C, 0]]));
    expect(await store.countJobsServed([B])).toEqual(new Map([[B, 1]]));
  });

  it("counts a job once per node that served part of it (a failover back to the same node is still one job)", async () => {
    const receipt = (segment: number, node: string): Receipt => ({
      v: RECEIPT_VERSION,
      receipt_id: randomUUID(),
      job_id: "job-failover",
      segment,
      node_id: node,
      operator_id: node,
      client_key_id: "key:test",
      model: "tiny",
      model_sha256: null,
      input_tokens: 1,
      output_tokens: 1,
      price: { input_per_1k: 0, output_per_1k: 0 },
      amount: 0,
      fee: 0,
      reward: 0,
      output_sha256: "0".repeat(64),
      result_commitment: null,
      completed_at: SEED_AT.toISOString(),
      platform_key: "f".repeat(64),
      status: "held",
      platform_signature: "1".repeat(128),
      node_signature: null,
    });
    const settled = await store.settleJob(
      { id: randomUUID(), idempotencyKey: "seed:job-failover", kind: "test.seed", jobId: "job-failover", createdAt: SEED_AT, entries: [] },
      [1, 2, 3].map((segment) => ({ receipt: receipt(segment, segment === 2 ? B : A), holdUntil: SEED_AT })),
    );
    expect(settled).toBe(true);
    expect(await store.countJobsServed([A, B])).toEqual(new Map([[A, 1], [B, 1]]));
  });
}

await describeOnBothDialects("jobs served", defineServedSuite);
