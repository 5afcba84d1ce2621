import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { NodeView } from "@tessera/protocol";
import { createCoordinator } from "../src/coordinator.js";
import { createLogger } from "../src/logger.js";
import { FIRST_COOLDOWN_MS } from "../src/trust/cooldown.js";
import { CHEAT_PRIOR } from "../src/trust/verification-factor.js";
import { newNode, registration, type ScriptedNetwork, scriptedNetwork, signedInject, streamNativeJob, testCoordinator, type TestCoordinator } from "./harness.js";
import type { ScriptedNode } from "./scripted-node.js";

/** A node's standing as `GET /api/v1/nodes/:id` shows it, and as routing acts on it. */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function coordinator(): Promise<TestCoordinator> {
  const t = await testCoordinator();
  cleanups.push(() => t.close());
  return t;
}

async function network(count: number): Promise<ScriptedNetwork> {
  const net = await scriptedNetwork(count);
  cleanups.push(() => net.close());
  return net;
}

async function view(t: TestCoordinator, id: string): Promise<{ statusCode: number; body: NodeView & { error?: string } }> {
  const res = await t.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${id}` });
  return { statusCode: res.statusCode, body: res.json() };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("GET /api/v1/nodes/:id", () => {
  it("shows a newly registered node on probation with a neutral reputation, without authentication", async () => {
    const t = await coordinator();
    const node = newNode();
    await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
    const { statusCode, body } = await view(t, node.id);
    expect(statusCode).toBe(200);
    expect(body).toEqual({
      node_id: node.id,
      status: "online",
      operator: node.id,
      tier: "probation",
      reputation: { score: expect.closeTo(1 - CHEAT_PRIOR, 10), completion: 1, speed: 1, verification: expect.closeTo(1 - CHEAT_PRIOR, 10) },
      checks: { passed: 0, failed: 0 },
      quarantined: false,
    });
  });

  it("answers 400 bad_request for a malformed id and 404 not_found for an unknown one", async () => {
    const t = await coordinator();
    for (const bad of ["xyz", "A".repeat(64), "0".repeat(63)]) {
      const res = await view(t, bad);
      expect(res.statusCode).toBe(400);
      expect(res.body.error).toBe("bad_request");
    }
    const unknown = await view(t, "0".repeat(64));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.body.error).toBe("not_found");
  });

  it("shows checks, suspicion and quarantine, and a restart keeps them with the cooldown", async () => {
    const t = await coordinator();
    const node = newNode();
    await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", registration(node.id));
    const { standing } = t.coordinator.ctx;
    standing.recordOutcome(node.id, "timed_out");
    standing.recordCheck(node.id, { passed: true });
    standing.recordCheck(node.id, { passed: false });
    let { body } = await view(t, node.id);
    expect(body).toMatchObject({ tier: "suspect", checks: { passed: 1, failed: 1 }, quarantined: false, cooldown_until: new Date(t.clock.now() + FIRST_COOLDOWN_MS).toISOString() });
    expect(body.reputation.completion).toBe(0.5);
    standing.recordCheck(node.id, { passed: false });
    ({ body } = await view(t, node.id));
    expect(body.quarantined).toBe(true);
    expect(body.reputation.verification).toBeLessThan(0.01);
    expect(standing.earningsHeld(node.id)).toBe(true);
    const metrics = (await t.coordinator.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/tessera_nodes_quarantined 1/);
    expect(metrics).toMatch(/tessera_nodes_by_tier\{tier="suspect"\} 1/);
    expect(metrics).toMatch(/tessera_node_cooldowns_total\{offence="timed_out"\} 1/);

    // Restart on the same data dir, half an hour later. Closing lands the standing writes still waiting out their delay.
    await t.coordinator.close();
    t.clock.advance(30 * 60 * 1000);
    const again = await createCoordinator(t.config, { clock: t.clock, logger: createLogger("silent") });
    try {
      const res = await again.app.inject({ method: "GET", url: `/api/v1/nodes/${node.id}` });
      expect(res.json()).toMatchObject({
        quarantined: true,
        tier: "suspect",
        checks: { passed: 1, failed: 2 },
        cooldown_until: new Date(t.clock.now() + FIRST_COOLDOWN_MS / 2).toISOString(),
        reputation: { completion: 0.5 },
      });
      expect(again.ctx.standing.isQuarantined(node.id)).toBe(true);
    } finally {
      await again.close();
      rmSync(t.config.dataDir, { recursive: true, force: true });
      cleanups.pop(); // the directory is gone already
    }
  });
});

describe("standing fed by jobs", () => {
  it("a node that fails a job cools down and is passed over, yet serves when it is the only node left", async () => {
    const net = await network(2);
    const { ctx } = net.t.coordinator;
    const ids = net.nodes.map((_, i) => [...ctx.registry.all()][i]!.id);
    // Whichever node gets the first job fails it; the other completes it.
    let failer = -1;
    for (const [i, node] of net.nodes.entries()) {
      node.onAssign = (job, self) => {
        if (failer === -1) {
          failer = i;
          self.accept(job.job_id);
          self.stream(job.job_id, [{ type: "error", code: "internal_error", message: "backend crashed" }]);
          return;
        }
        self.accept(job.job_id);
        self.stream(job.job_id, [
          { type: "text-delta", text: "ok" },
          { type: "finish", reason: "stop" },
        ]);
      };
    }
    const first = await streamNativeJob(net, {});
    expect(first.events.at(-1)).toBe("[DONE]");
    const bad = ids[failer]!;
    const good = ids[1 - failer]!;
    const badView = (await view(net.t, bad)).body;
    expect(badView.cooldown_until).toBe(new Date(net.t.clock.now() + FIRST_COOLDOWN_MS).toISOString());
    expect(badView.reputation.completion).toBeLessThan(1);
    expect((await view(net.t, good)).body).toMatchObject({ reputation: { completion: 1 }, status: "online" });
    expect((await view(net.t, good)).body.cooldown_until).toBeUndefined();

    // While the healthy node is there, the cooling one gets nothing.
    const before = net.nodes[failer]!.assignments.length;
    for (let i = 0; i < 3; i++) expect((await streamNativeJob(net, {})).events.at(-1)).toBe("[DONE]");
    expect(net.nodes[failer]!.assignments.length).toBe(before);

    // Alone, it serves rather than every job failing.
    const badNode = net.nodes[failer]!;
    await net.nodes[1 - failer]!.close();
    await until(() => !ctx.registry.get(good)!.online, "the healthy node to go offline");
    failer = 99; // from now on it behaves
    const alone = await streamNativeJob(net, {});
    expect(alone.events).toEqual(['{"text":"ok"}', "[DONE]"]);
    expect(badNode.assignments.length).toBe(before + 1);
    expect(ctx.standing.isCoolingDown(bad, net.t.clock.now())).toBe(true);
  });

  it("a job that only quarantined nodes could serve fails at once with no_capacity", async () => {
    const net = await network(1);
    const { ctx } = net.t.coordinator;
    const id = [...ctx.registry.all()][0]!.id;
    ctx.standing.recordCheck(id, { passed: false });
    ctx.standing.recordCheck(id, { passed: false });
    const { events } = await streamNativeJob(net, {});
    expect(events.join("\n")).toMatch(/no_capacity/);
    expect(events.join("\n")).toMatch(/quarantined/);
    expect(net.nodes[0]!.assignments).toHaveLength(0);
  });

  it("completed jobs count toward the operator's probation", async () => {
    const net = await network(1);
    const { ctx } = net.t.coordinator;
    const id = [...ctx.registry.all()][0]!.id;
    for (let i = 0; i < 3; i++) await streamNativeJob(net, {});
    await ctx.standing.settled();
    expect(await ctx.store.listOperatorStandings()).toEqual([{ operatorId: id, completedJobs: 3, updatedAt: expect.any(Date) }]);
    expect((await ctx.store.listNodeStandings())[0]).toMatchObject({ nodeId: id, outcomes: "111" });
  });
});

describe("which endings of a node's turn count against it", () => {
  type Play = (jobId: string, node: ScriptedNode) => void;
  const rows: Array<[string, Play, "failed" | "timed_out" | "stalled" | "lost" | undefined, number]> = [
    ["declining with job.reject", (job, n) => n.send({ type: "job.reject", job_id: job, reason: "busy" }), undefined, 0],
    ["declining with a busy error before any work", (job, n) => (n.accept(job), n.stream(job, [{ type: "error", code: "no_capacity", message: "full" }])), undefined, 0],
    ["an error from its backend", (job, n) => (n.accept(job), n.stream(job, [{ type: "error", code: "internal_error", message: "crashed" }])), "failed", 0],
    ["not accepting in time", () => undefined, "timed_out", 6_000],
    ["accepting, then silence past the first-token deadline", (job, n) => n.accept(job), "stalled", 31_000],
    ["its session dropping while it holds the job", (job, n) => (n.accept(job), void n.close()), "lost", 0],
  ];
  for (const [name, play, offence, waitMs] of rows) {
    it(`${name}: ${offence ?? "nobody's offence"}`, async () => {
      const net = await network(2);
      const { ctx } = net.t.coordinator;
      let first: ScriptedNode | undefined;
      let firstJob: string | undefined;
      for (const node of net.nodes) {
        node.onAssign = (job, self) => {
          if (!first) {
            first = self;
            firstJob = job.job_id;
            play(job.job_id, self);
            return;
          }
          self.accept(job.job_id);
          self.stream(job.job_id, [
            { type: "text-delta", text: "ok" },
            { type: "finish", reason: "stop" },
          ]);
        };
      }
      const done = streamNativeJob(net, {});
      await until(() => first !== undefined, "the first assignment");
      // A node that accepted must be seen to have accepted before time moves on, or it would count as not accepting.
      if (offence === "stalled") await until(() => ctx.jobs.get(firstJob!)?.attempt?.acceptedAt !== undefined, "the coordinator sees the accept");
      if (waitMs > 0) {
        net.t.clock.advance(waitMs);
        net.t.coordinator.tick();
      }
      expect((await done).events.at(-1)).toBe("[DONE]");
      const firstId = [...ctx.registry.all()][net.nodes.indexOf(first!)]!.id;
      const standing = (await view(net.t, firstId)).body;
      const metrics = (await net.t.coordinator.app.inject({ method: "GET", url: "/metrics" })).body;
      if (offence) {
        expect(standing.cooldown_until).toBeDefined();
        expect(standing.reputation.completion).toBeLessThan(1);
        expect(metrics).toMatch(new RegExp(`tessera_node_cooldowns_total\\{offence="${offence}"\\} 1`));
      } else {
        expect(standing.cooldown_until).toBeUndefined();
        expect(standing.reputation.completion).toBe(1);
        expect(metrics).not.toMatch(/tessera_node_cooldowns_total\{/);
      }
    });
  }
});
