import { describe, expect, it } from "vitest";
import type { LiveNode } from "../registry.js";
import { testLiveNode } from "./live-node.test-support.js";
import { LiveJob } from "./live-job.js";
import { FULL_SCAN_LIMIT, SchedulerChooser } from "./scheduler-chooser.js";
import { SpeedMetrics } from "./speed-metrics.js";

/** The chooser's part of failover by model file (scheduler/design.md "Continuations"). */
const FILE = "a".repeat(64);
const OTHER = "b".repeat(64);

function node(i: number, sha256?: string): LiveNode {
  return testLiveNode(i.toString(16).padStart(64, "0"), { models: [{ id: "m", backend: "t", ...(sha256 ? { sha256 } : {}) }] });
}

/** A job whose first node (with `file`) wrote "Hello" and was lost. */
function continuation(file: string | null = FILE, text = "Hello"): LiveJob {
  const job = new LiveJob("j", "o", "m", [{ role: "user", content: "hi" }], { max_tokens: 16, temperature: 0, top_p: 1 }, undefined, 0);
  job.text = text;
  job.modelSha256 = file ?? undefined;
  return job;
}

function seeded(): () => number {
  let state = 7;
  return () => (state = (state * 48271) % 2147483647) / 2147483647;
}

const choose = (chooser: SchedulerChooser, job: LiveJob, list: LiveNode[]) => {
  const byId = new Map(list.map((n) => [n.id, n]));
  return chooser.choose(job, list, 0, (id) => byId.get(id));
};

describe("SchedulerChooser: a continuation keeps to its model file", () => {
  it("goes to the node holding the file, not the one that would win the tie (smaller id)", () => {
    const list = [node(1, OTHER), node(2), node(3, FILE)];
    expect(choose(new SchedulerChooser(new SpeedMetrics()), continuation(), list).nodeId).toBe(list[2]!.id);
  });

  it("with no node of its file, an unknown file before another file", () => {
    const list = [node(1, OTHER), node(2)];
    expect(choose(new SchedulerChooser(new SpeedMetrics()), continuation(), list).nodeId).toBe(list[1]!.id);
  });

  it("with only nodes of another file, one of them takes it: never left pending", () => {
    const list = [node(1, OTHER)];
    expect(choose(new SchedulerChooser(new SpeedMetrics()), continuation(), list).nodeId).toBe(list[0]!.id);
  });

  it("a job with no text yet, or whose text came from no known file, ignores files", () => {
    const list = [node(1, OTHER), node(2, FILE)];
    const chooser = new SchedulerChooser(new SpeedMetrics());
    expect(choose(chooser, continuation(FILE, ""), list).nodeId).toBe(list[0]!.id);
    expect(choose(chooser, continuation(null), list).nodeId).toBe(list[0]!.id);
  });

  it("follows a node's models when a heartbeat replaces them (the file index is rebuilt then, not per decision)", () => {
    const list = [node(1, OTHER), node(2, FILE)];
    const chooser = new SchedulerChooser(new SpeedMetrics());
    expect(choose(chooser, continuation(), list).nodeId).toBe(list[1]!.id);
    list[0]!.models = [{ id: "m", backend: "t", sha256: FILE }];
    list[1]!.models = [{ id: "m", backend: "t", sha256: OTHER }];
    expect(choose(chooser, continuation(), list).nodeId).toBe(list[0]!.id);
  });

  it("in a large network, finds the one node of its file even when the sample misses it", () => {
    const list = Array.from({ length: FULL_SCAN_LIMIT + 1000 }, (_, i) => node(i, OTHER));
    list.push(node(list.length, FILE));
    const chooser = new SchedulerChooser(new SpeedMetrics(), seeded());
    for (let i = 0; i < 20; i++) expect(choose(chooser, continuation(), list).nodeId).toBe(list.at(-1)!.id);
  });
});
