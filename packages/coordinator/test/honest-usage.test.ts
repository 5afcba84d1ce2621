import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ScriptedNetwork, scriptedNetwork, streamNativeJob, type TestCoordinator } from "./harness.js";
import type { ScriptedNode } from "./scripted-node.js";

/** A node's usage report is a claim: what reaches the client and the node's credit is what the coordinator relayed. */
let net: ScriptedNetwork;
let t: TestCoordinator;
let baseUrl: string;
let node: ScriptedNode;

beforeEach(async () => {
  net = await scriptedNetwork(1);
  ({ t, baseUrl } = net);
  node = net.nodes[0]!;
});

afterEach(async () => net.close());


async function finished(id: string) {
  for (let i = 0; i < 200; i++) {
    const job = (await (await fetch(`${baseUrl}/api/v1/jobs/${id}`, { headers: { authorization: `Bearer ${t.token}` } })).json()) as {
      status: string;
      result?: { usage: { prompt_tokens: number; completion_tokens: number } };
    };
    const segments = await t.coordinator.ctx.store.listJobSegments(id);
    if (job.status === "completed" && segments.length > 0) return { job, segments };
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${id} did not complete`);
}

describe("honest usage", () => {
  it("replaces an inflated usage report with the relayed count and a bounded prompt count, for the client and the node's credit", async () => {
    node.onAssign = (job, self) => {
      self.accept(job.job_id);
      self.stream(job.job_id, [
        { type: "text-delta", text: "Hello", tokens: [1] },
        { type: "text-delta", text: " world", tokens: [2] },
        { type: "usage", prompt_tokens: 9_007_199_254_740_991, completion_tokens: 9_007_199_254_740_991 },
        { type: "finish", reason: "stop" },
      ]);
    };
    const { id } = await streamNativeJob(net, {});
    const { job, segments } = await finished(id);
    expect(job.result!.usage.completion_tokens).toBe(2);
    // The coordinator's own estimate of "hi" (4 characters a token) in place of a claim no prompt could justify.
    expect(job.result!.usage.prompt_tokens).toBe(1);
    expect(segments.map((s) => s.completionTokens)).toEqual([2]);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/tessera_usage_corrections_total\{kind="claim_ignored"\} 1/);
    expect(metrics).toMatch(/tessera_usage_corrections_total\{kind="prompt_over_bound"\} 1/);
  });

  it("relays no token past max_tokens and credits no more than that, cancelling a node that keeps going", async () => {
    node.onAssign = (job, self) => {
      self.accept(job.job_id);
      self.stream(job.job_id, [1, 2, 3, 4, 5].map((i) => ({ type: "text-delta" as const, text: `t${i} `, tokens: [i] })));
      self.stream(job.job_id, [{ type: "usage", prompt_tokens: 7, completion_tokens: 5 }, { type: "finish", reason: "stop" }]);
    };
    const { id, events } = await streamNativeJob(net, { max_tokens: 3 });
    expect(events).toEqual(['{"text":"t1 "}', '{"text":"t2 "}', '{"text":"t3 "}', "[DONE]"]);
    const { job, segments } = await finished(id);
    expect(job.result!.usage.completion_tokens).toBe(3);
    expect(segments.map((s) => s.completionTokens)).toEqual([3]);
    for (let i = 0; i < 200 && !node.cancels.includes(id); i++) await new Promise((r) => setTimeout(r, 10));
    expect(node.cancels).toContain(id);
  });

  it("accepts an honest report from a backend that sends no token ids, within what the text allows", async () => {
    node.onAssign = (job, self) => {
      self.accept(job.job_id);
      self.stream(job.job_id, [
        { type: "text-delta", text: "Hello world" },
        { type: "usage", prompt_tokens: 9, completion_tokens: 2 },
        { type: "finish", reason: "stop" },
      ]);
    };
    const { id } = await streamNativeJob(net, {});
    const { job } = await finished(id);
    expect(job.result!.usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 2 });
  });
});
