import { describe, expect, it } from "vitest";
import type { LiveNode } from "../registry.js";
import { testLiveNode } from "./live-node.test-support.js";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeStanding } from "../trust/node-standing.js";
import { LiveJob } from "./live-job.js";
import { SchedulerChooser } from "./scheduler-chooser.js";
import { SpeedMetrics } from "./speed-metrics.js";

function liveNode(id: string): LiveNode {
  return testLiveNode(id, { maxConcurrency: 2 });
}

function setup(ids: string[]) {
  const clock = new ManualClock(1_000_000_000_000);
  const speed = new SpeedMetrics();
  const standing = new NodeStanding({
    clock,
    store: { saveNodeStanding: async () => undefined, addOperatorCompletedJobs: async () => 1 },
    logger: createLogger("silent"),
    operatorOf: (id) => id,
    speedSamples: () => [],
  });
  const nodes = ids.map(liveNode);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const chooser = new SchedulerChooser(speed, Math.random, standing);
  const job = () => new LiveJob("j", "o", "m", [{ role: "user", content: "hi" }], { max_tokens: 16, temperature: 0, top_p: 1 }, undefined, 0);
  const choose = () => chooser.choose(job(), nodes, clock.now(), (id) => byId.get(id));
  return { clock, speed, standing, nodes, choose };
}

describe("SchedulerChooser reads the node standing", () => {
  it("a node that just failed a job is passed over while another can serve, and serves again once alone", () => {
    const { standing, choose, nodes } = setup(["a", "b"]);
    expect(choose()).toEqual({ nodeId: "a" });
    standing.recordOutcome("a", "failed");
    expect(choose()).toEqual({ nodeId: "b" });
    nodes[1]!.online = false;
    expect(choose()).toEqual({ nodeId: "a" });
  });

  it("the cooldown ends after its hour, and a much faster node wins again despite its lower completion factor", () => {
    const { standing, choose, clock, speed } = setup(["a", "b"]);
    speed.record("a", "m", { tokensPerSecond: 500, ttftMs: 20 });
    speed.record("b", "m", { tokensPerSecond: 50, ttftMs: 200 });
    standing.recordOutcome("a", "timed_out");
    expect(choose()).toEqual({ nodeId: "b" });
    clock.advance(60 * 60 * 1000);
    expect(choose()).toEqual({ nodeId: "a" });
  });

  it("a lower reputation costs a node the tie with an equal peer", () => {
    const { standing, choose } = setup(["a", "b"]);
    // Completed outcomes keep the node out of cooldown; its failed one is long forgotten by the cooldown but not the window.
    for (let i = 0; i < 5; i++) standing.recordOutcome("a", "completed");
    standing.recordCheck("a", { passed: false });
    expect(choose()).toEqual({ nodeId: "b" });
  });

  it("quarantined nodes get nothing, and a job only they could serve fails at once instead of waiting", () => {
    const { standing, choose } = setup(["a", "b"]);
    for (const id of ["a", "b"]) {
      standing.recordCheck(id, { passed: false });
      standing.recordCheck(id, { passed: false });
    }
    expect(choose()).toEqual({ reason: expect.stringMatching(/quarantined/), waitable: false });
  });

  it("busy nodes leave the job waiting", () => {
    const { choose, nodes } = setup(["a"]);
    nodes[0]!.activeJobs = new Set(["x", "y"]);
    expect(choose()).toEqual({ reason: expect.stringMatching(/concurrency limit/), waitable: true });
  });
});
