import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SseDecoder } from "@tessera/protocol";
import { type ScriptedNetwork, scriptedNetwork, type TestCoordinator } from "./harness.js";
import type { ScriptedNode } from "./scripted-node.js";

/**
 * A node that accepts a job and then says nothing must not hold it: past its progress deadline (moved clock, no
 * sleeping) the job continues on another node from the text already sent, and the client's stream completes.
 */
let net: ScriptedNetwork;
let t: TestCoordinator;
let baseUrl: string;
let nodes: ScriptedNode[];

beforeEach(async () => {
  net = await scriptedNetwork(2, { firstTokenTimeoutS: 30, stallTimeoutS: 15, offlineAfterS: 90 });
  ({ t, baseUrl, nodes } = net);
});

afterEach(async () => net.close());

async function until<T>(fn: () => T | undefined | Promise<T | undefined>, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never held");
}

/** Starts a streaming job; resolves to the SSE event payloads once the stream ends. */
function stream(body: object): { done: Promise<string[]>; id: Promise<string> } {
  let setId!: (id: string) => void;
  const id = new Promise<string>((r) => (setId = r));
  const done = (async () => {
    const res = await fetch(`${baseUrl}/api/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], stream: true, ...body }),
    });
    setId(res.headers.get("x-tessera-job-id")!);
    return new SseDecoder().push(await res.text()).map((e) => e.data);
  })();
  return { done, id };
}

/** The first node to get the job plays `silent`; the other finishes it from the prefix it is given. */
function scriptSilentThenTakeOver(silent: (jobId: string, node: ScriptedNode) => void): { stalled: () => ScriptedNode | undefined } {
  let stalled: ScriptedNode | undefined;
  for (const n of nodes) {
    n.onAssign = (job, self) => {
      if (!stalled) {
        stalled = self;
        self.accept(job.job_id);
        silent(job.job_id, self);
        return;
      }
      self.accept(job.job_id);
      self.stream(job.job_id, [
        { type: "text-delta", text: job.assistant_prefix ? " world" : "Hello world", tokens: [3] },
        { type: "finish", reason: "stop" },
      ]);
    };
  }
  return { stalled: () => stalled };
}

describe("progress deadline", () => {
  it("moves a job whose node accepted it and never sent a token, at the first-token deadline and not before", async () => {
    const script = scriptSilentThenTakeOver(() => undefined);
    const s = stream({});
    const id = await s.id;
    await until(() => script.stalled());
    const stalled = script.stalled()!;
    await until(() => (t.coordinator.ctx.jobs.get(id)?.attempt?.acceptedAt !== undefined ? true : undefined));

    t.clock.advance(29_000);
    t.coordinator.tick();
    expect(stalled.cancels).not.toContain(id);
    t.clock.advance(1_000);
    t.coordinator.tick();

    expect(await s.done).toEqual(['{"text":"Hello world"}', "[DONE]"]);
    expect(stalled.cancels).toContain(id);
    const job = t.coordinator.ctx.jobs.get(id)!;
    expect(job.status).toBe("completed");
    expect(job.excludedNodes.size).toBe(1);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/tessera_job_stalls_total\{phase="first_token"\} 1/);
  });

  it("moves a job whose node went silent between tokens, continuing from the text already sent", async () => {
    const script = scriptSilentThenTakeOver((jobId, self) => self.stream(jobId, [{ type: "text-delta", text: "Hello", tokens: [1] }]));
    const s = stream({});
    const id = await s.id;
    await until(() => (t.coordinator.ctx.jobs.get(id)?.text === "Hello" ? true : undefined));

    t.clock.advance(14_999);
    t.coordinator.tick();
    expect(script.stalled()!.cancels).not.toContain(id);
    t.clock.advance(1);
    t.coordinator.tick();

    expect(await s.done).toEqual(['{"text":"Hello"}', '{"text":" world"}', "[DONE]"]);
    const segments = await until(async () => {
      const rows = await t.coordinator.ctx.store.listJobSegments(id);
      return rows.length === 2 ? rows : undefined;
    });
    expect(segments.map((r) => r.completionTokens)).toEqual([1, 1]);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/tessera_job_stalls_total\{phase="between_tokens"\} 1/);
  });

  it("gives a node measured as slow its own, longer allowance", async () => {
    for (const n of t.coordinator.ctx.registry.all()) t.coordinator.ctx.speed.record(n.id, "tiny", { tokensPerSecond: 0.25, ttftMs: 10_000 });
    const script = scriptSilentThenTakeOver(() => undefined);
    const s = stream({});
    const id = await s.id;
    await until(() => script.stalled());
    await until(() => (t.coordinator.ctx.jobs.get(id)?.attempt?.acceptedAt !== undefined ? true : undefined));
    // slack 8 × 10 s measured time to first token = 80 s, well past the 30 s floor.
    t.clock.advance(79_000);
    t.coordinator.tick();
    expect(script.stalled()!.cancels).not.toContain(id);
    t.clock.advance(1_000);
    t.coordinator.tick();
    expect(await s.done).toEqual(['{"text":"Hello world"}', "[DONE]"]);
  });
});

describe("a job pinned to a node that stalls", () => {
  it("fails at once with a reason naming the node, instead of waiting out the queue for a node that already failed it", async () => {
    const nodeId = [...t.coordinator.ctx.registry.all()][0]!.id;
    for (const n of nodes) n.onAssign = (job, self) => self.accept(job.job_id);
    const s = stream({ node_id: nodeId });
    const id = await s.id;
    await until(() => (t.coordinator.ctx.jobs.get(id)?.attempt?.acceptedAt !== undefined ? true : undefined));

    t.clock.advance(30_000);
    t.coordinator.tick();

    expect(await s.done).toEqual([JSON.stringify({ error: "no_capacity", message: `node ${nodeId} has already failed this job and it may run on no other` })]);
    const job = t.coordinator.ctx.jobs.get(id)!;
    expect(job.status).toBe("failed");
    expect(job.error?.code).toBe("no_capacity");
  });
});

describe("a node starting another job", () => {
  it("is not judged stalled on its running streams while it prefills the newcomer's prompt", async () => {
    const nodeId = [...t.coordinator.ctx.registry.all()][0]!.id;
    const held: string[] = [];
    nodes[0]!.onAssign = (job, self) => {
      held.push(job.job_id);
      self.accept(job.job_id);
      if (held.length === 1) self.stream(job.job_id, [{ type: "text-delta", text: "Hello", tokens: [1] }]);
    };
    const running = stream({ node_id: nodeId });
    const runningId = await running.id;
    await until(() => (t.coordinator.ctx.jobs.get(runningId)?.text === "Hello" ? true : undefined));
    t.clock.advance(5_000);
    // 4,000 characters: about 1,000 prompt tokens, 20 s at the slowest admissible prefill (50 tokens/s).
    const newcomer = stream({ node_id: nodeId, messages: [{ role: "user", content: "x".repeat(4_000) }] });
    const newcomerId = await newcomer.id;
    await until(() => (t.coordinator.ctx.jobs.get(newcomerId)?.attempt?.acceptedAt !== undefined ? true : undefined));

    t.clock.advance(19_999); // 25 s after the last token: past the 15 s stall floor, inside the newcomer's prefill
    t.coordinator.tick();
    expect(nodes[0]!.cancels).not.toContain(runningId);
    t.clock.advance(1);
    t.coordinator.tick();
    await until(() => (nodes[0]!.cancels.includes(runningId) ? true : undefined));
    for (const id of [runningId, newcomerId]) t.coordinator.ctx.jobs.cancel(id, "test over");
    await Promise.all([running.done, newcomer.done]);
  });
});

describe("session liveness", () => {
  it("keeps a node that speaks over its session online when its HTTP heartbeats stop, and takes a silent one offline", async () => {
    const ids = [...t.coordinator.ctx.registry.all()].map((n) => n.id);
    // Neither node sends HTTP heartbeats; the first answers over its session every 10 s, as a pong to the hub's ping.
    // The second's session hangs silent: it answers not even the sweep's own ping.
    nodes[1]!.answerPings = false;
    for (let elapsed = 0; elapsed < 120_000; elapsed += 10_000) {
      t.clock.advance(10_000);
      nodes[0]!.send({ type: "pong", sent_at: t.clock.now() - 5 });
      await until(() => (t.coordinator.ctx.registry.get(ids[0]!)!.lastSeenAt === t.clock.now() ? true : undefined));
      t.coordinator.tick();
    }
    expect(ids.map((id) => t.coordinator.ctx.registry.get(id)!.online)).toEqual([true, false]);
    expect(t.coordinator.ctx.registry.get(ids[0]!)!.session).toBeDefined();
  });

  it("knows when each session was opened, on the node's clock (the time it signed the upgrade with)", () => {
    // The nodes connected as the network started, signing with the second of its clock, which has not moved since.
    const opened = [...t.coordinator.ctx.registry.all()].map((n) => n.session?.openedAt);
    expect(opened).toEqual([Math.floor(t.clock.now() / 1000), Math.floor(t.clock.now() / 1000)]);
  });
});
