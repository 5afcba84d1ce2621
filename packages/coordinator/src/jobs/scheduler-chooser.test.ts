import { describe, expect, it } from "vitest";
import { RemoteWorker } from "../bus/remote-worker.js";
import type { LiveNode } from "../registry.js";
import { testLiveNode } from "./live-node.test-support.js";
import { LiveJob } from "./live-job.js";
import { FULL_SCAN_LIMIT, SAMPLE_SIZE, SchedulerChooser } from "./scheduler-chooser.js";
import { SpeedMetrics } from "./speed-metrics.js";

function nodes(count: number): LiveNode[] {
  return Array.from({ length: count }, (_, i) => testLiveNode(i.toString(16).padStart(64, "0")));
}

function job(system?: string): LiveJob {
  const messages = [...(system ? [{ role: "system" as const, content: system }] : []), { role: "user" as const, content: "hi" }];
  return new LiveJob("j", "o", "m", messages, { max_tokens: 16, temperature: 0, top_p: 1 }, undefined, 0);
}

function counter(): { random: () => number; calls: () => number } {
  let n = 0;
  let state = 7;
  return {
    random: () => {
      n++;
      state = (state * 48271) % 2147483647;
      return state / 2147483647;
    },
    calls: () => n,
  };
}

describe("SchedulerChooser on large networks", () => {
  const lookupIn = (list: LiveNode[]) => {
    const byId = new Map(list.map((n) => [n.id, n]));
    return (id: string) => byId.get(id);
  };

  it("scores every node up to the full-scan limit and a sample above it", () => {
    const small = counter();
    const few = nodes(FULL_SCAN_LIMIT);
    expect(new SchedulerChooser(new SpeedMetrics(), small.random).choose(job(), few, 0, lookupIn(few)).nodeId).toBeDefined();
    expect(small.calls()).toBe(0);
    const big = counter();
    const many = nodes(FULL_SCAN_LIMIT + 1000);
    expect(new SchedulerChooser(new SpeedMetrics(), big.random).choose(job(), many, 0, lookupIn(many)).nodeId).toBeDefined();
    expect(big.calls()).toBeGreaterThanOrEqual(SAMPLE_SIZE);
    expect(big.calls()).toBeLessThan(SAMPLE_SIZE * 2);
  });

  it("still finds the one free node when the sample holds only busy ones", () => {
    const many = nodes(2000);
    for (const n of many) n.activeJobs.add("busy");
    const free = many[1234]!;
    free.activeJobs.clear();
    const chooser = new SchedulerChooser(new SpeedMetrics(), counter().random);
    expect(chooser.choose(job(), many, 0, lookupIn(many))).toEqual({ nodeId: free.id });
    free.activeJobs.add("busy");
    expect(chooser.choose(job(), many, 0, lookupIn(many))).toMatchObject({ reason: expect.stringContaining("concurrency limit") });
  });

  it("keeps nodes that hold the job's system prompt in every sample (prefix affinity)", () => {
    const many = nodes(2000);
    const chooser = new SchedulerChooser(new SpeedMetrics(), counter().random);
    const first = chooser.choose(job("You are a pirate."), many, 0, lookupIn(many)).nodeId!;
    for (let i = 0; i < 20; i++) {
      expect(chooser.choose(job("You are a pirate."), many, 1 + i, lookupIn(many)).nodeId).toBe(first);
    }
  });
});

describe("SchedulerChooser across replicas", () => {
  it("prefers a node held here to one as loaded and as fast on another replica, and takes the remote one when it is less loaded", () => {
    // The remote node sorts first by id, so without the bus in its round trip it would win every tie.
    const remote = new RemoteWorker("0".repeat(64), "r-b", () => "sent", "r-a", { rejected() {} }, () => undefined);
    remote.nodeRttMs = 2;
    remote.busRttMs = 1.5;
    const there = testLiveNode(remote.id, { worker: remote, maxConcurrency: 8 });
    const here = testLiveNode("f".repeat(64), { maxConcurrency: 8 });
    const list = [there, here];
    const byId = new Map(list.map((n) => [n.id, n]));
    const chooser = new SchedulerChooser(new SpeedMetrics());
    expect(remote.rtt()).toBe(3.5);
    expect(chooser.choose(job(), list, 0, (id) => byId.get(id)).nodeId).toBe(here.id);
    here.activeJobs.add("j1");
    expect(chooser.choose(job(), list, 0, (id) => byId.get(id)).nodeId).toBe(there.id);
    // Before the bus's round trip is measured, the remote node counts as near as its session.
    remote.busRttMs = undefined;
    here.activeJobs.clear();
    expect(chooser.choose(job(), list, 0, (id) => byId.get(id)).nodeId).toBe(there.id);
  });
});
