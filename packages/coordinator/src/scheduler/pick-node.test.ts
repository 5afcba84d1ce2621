import { describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { errorCodeForNoCandidate, isWaitable } from "./no-candidate.js";
import { pick } from "./pick-node.js";
import type { JobRequirements, NodeSnapshot, PickResult } from "./types.js";

const NOW = 1_000_000;
const MODEL = "llama-3-8b";

function node(id: string, over: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    id,
    online: true,
    draining: false,
    quarantined: false,
    models: [MODEL],
    activeJobs: 0,
    maxConcurrency: 4,
    rttMs: 20,
    reputation: 1,
    perf: { [MODEL]: { tokensPerSecond: 50, ttftMs: 200 } },
    ...over,
  };
}

function job(over: Partial<JobRequirements> = {}): JobRequirements {
  return { model: MODEL, promptTokens: 100, maxTokens: 100, ...over };
}

function chosen(r: PickResult): string {
  if (!r.ok) throw new Error(`expected a choice, got ${r.reason}`);
  return r.nodeId;
}

describe("pick: filters", () => {
  // Each row: node "a" would win on score (it is faster), but the filter must send the job to "b" instead.
  const faster = { perf: { [MODEL]: { tokensPerSecond: 200, ttftMs: 50 } } };
  const rows: Array<[string, Partial<NodeSnapshot>, Partial<JobRequirements>, ReadonlySet<string> | undefined]> = [
    ["offline node is skipped", { online: false }, {}, undefined],
    ["node not serving the model is skipped", { models: ["other-model"] }, {}, undefined],
    ["quarantined node is skipped", { quarantined: true }, {}, undefined],
    ["draining node gets no new job", { draining: true }, {}, undefined],
    ["node at its concurrency limit is skipped", { activeJobs: 4, maxConcurrency: 4 }, {}, undefined],
    ["node that already failed this job is skipped", {}, {}, new Set(["a"])],
    ["pinned job goes to the pinned node even if slower", {}, { pinnedNodeId: "b" }, undefined],
    [
      "node whose model lacks a needed feature is skipped",
      { modelFeatures: { [MODEL]: new Set(["chat", "tools"] as const) } },
      { features: ["chat", "logprobs"] },
      undefined,
    ],
  ];
  it.each(rows)("%s", (_name, aOver, jobOver, exclude) => {
    const nodes = [node("a", { ...faster, ...aOver }), node("b", { modelFeatures: { [MODEL]: new Set(["chat", "tools", "logprobs"] as const) } })];
    expect(chosen(pick(job(jobOver), nodes, NOW, { exclude }))).toBe("b");
  });

  it("without any filter the faster node wins (the control row)", () => {
    expect(chosen(pick(job(), [node("a", faster), node("b")], NOW))).toBe("a");
  });

  const empty: Array<[string, NodeSnapshot[], Partial<JobRequirements>, string]> = [
    ["no nodes at all", [], {}, "no_node_online"],
    ["every node offline", [node("a", { online: false })], {}, "no_node_online"],
    ["nobody serves the model", [node("a", { models: ["x"] })], {}, "no_node_serves_model"],
    ["nobody offers the features", [node("a")], { features: ["chat", "response_format"] }, "no_node_serves_model"],
    ["pinned node absent", [node("a")], { pinnedNodeId: "zz" }, "pinned_node_unavailable"],
    ["pinned node serves another model", [node("a"), node("b", { models: ["x"] })], { pinnedNodeId: "b" }, "pinned_node_unavailable"],
    ["all quarantined", [node("a", { quarantined: true })], {}, "all_quarantined"],
    ["all draining", [node("a", { draining: true }), node("b", { quarantined: true })], {}, "all_draining"],
    ["all busy, one draining", [node("a", { activeJobs: 4 }), node("b", { draining: true })], {}, "all_busy"],
  ];
  it.each(empty)("no candidate: %s → %s", (_name, nodes, jobOver, reason) => {
    const r = pick(job(jobOver), nodes, NOW);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(reason);
      expect(r.message).toContain(jobOver.pinnedNodeId ?? (reason === "no_node_online" ? "online" : MODEL));
    }
  });

  it("all excluded reports all_excluded, and counts every rejection", () => {
    const r = pick(job(), [node("a"), node("b"), node("c", { online: false })], NOW, { exclude: new Set(["a", "b"]) });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe("all_excluded");
      expect(r.rejected).toMatchObject({ excluded: 2, offline: 1, busy: 0 });
    }
  });

  it("maps reasons to the wire: unknown model → model_not_found, otherwise no_capacity", () => {
    expect(errorCodeForNoCandidate("no_node_serves_model", { modelKnown: false })).toBe("model_not_found");
    expect(errorCodeForNoCandidate("no_node_serves_model", { modelKnown: true })).toBe("no_capacity");
    expect(errorCodeForNoCandidate("all_busy", { modelKnown: true })).toBe("no_capacity");
    expect(isWaitable("all_busy", { modelKnown: true })).toBe(true);
    expect(isWaitable("no_node_serves_model", { modelKnown: false })).toBe(false);
    expect(isWaitable("all_quarantined", { modelKnown: true })).toBe(false);
    expect(isWaitable("all_excluded", { modelKnown: true })).toBe(true);
    expect(isWaitable("all_excluded", { modelKnown: true, pinned: true })).toBe(false);
  });

  it("rejects a job with no token budget with bad_request", () => {
    expect(() => pick(job({ maxTokens: 0 }), [node("a")], NOW)).toThrow(TesseraError);
  });
});

describe("pick: score terms", () => {
  it("measured decode speed: the faster node wins", () => {
    const nodes = [node("slow", { perf: { [MODEL]: { tokensPerSecond: 10, ttftMs: 200 } } }), node("fast")];
    expect(chosen(pick(job(), nodes, NOW))).toBe("fast");
  });

  it("measured TTFT: with equal speed the quicker first token wins", () => {
    const nodes = [node("a", { perf: { [MODEL]: { tokensPerSecond: 50, ttftMs: 900 } } }), node("b")];
    expect(chosen(pick(job(), nodes, NOW))).toBe("b");
  });

  it("TTFT weight: a fast-decoding node with a slow first token wins only when completion matters", () => {
    const nodes = [
      node("quick-start", { perf: { [MODEL]: { tokensPerSecond: 20, ttftMs: 100 } } }),
      node("fast-decode", { perf: { [MODEL]: { tokensPerSecond: 100, ttftMs: 1500 } } }),
    ];
    const long = job({ maxTokens: 500 });
    expect(chosen(pick(long, nodes, NOW))).toBe("fast-decode");
    expect(chosen(pick(long, nodes, NOW, { weights: { ttftWeight: 1, completionWeight: 0 } }))).toBe("quick-start");
  });

  it("queue depth: a busy fast node loses to an idle node of similar speed, but beats a much slower idle one", () => {
    const busyFast = node("busy-fast", { activeJobs: 2, perf: { [MODEL]: { tokensPerSecond: 60, ttftMs: 200 } } });
    expect(chosen(pick(job(), [busyFast, node("idle")], NOW))).toBe("idle");
    const idleSlow = node("idle-slow", { perf: { [MODEL]: { tokensPerSecond: 10, ttftMs: 200 } } });
    expect(chosen(pick(job(), [busyFast, idleSlow], NOW))).toBe("busy-fast");
  });

  it("RTT: with equal speed the nearer node wins; unknown RTT counts as 300 ms", () => {
    expect(chosen(pick(job(), [node("far", { rttMs: 400 }), node("near")], NOW))).toBe("near");
    const r = pick(job(), [node("unknown", { rttMs: undefined }), node("near", { rttMs: 250 })], NOW);
    expect(chosen(r)).toBe("near");
    if (r.ok) expect(r.candidates.find((c) => c.nodeId === "unknown")!.rttMs).toBe(300);
  });

  it("reputation: a node at half reputation looks twice as slow", () => {
    const nodes = [node("a", { reputation: 0.5, perf: { [MODEL]: { tokensPerSecond: 80, ttftMs: 150 } } }), node("b")];
    expect(chosen(pick(job(), nodes, NOW))).toBe("b");
    // Neutral reputation: a's better speed wins.
    expect(chosen(pick(job(), [{ ...nodes[0]!, reputation: 1 }, nodes[1]!], NOW))).toBe("a");
  });

  it("prefix affinity: same system prompt goes back to the node that has it cached", () => {
    const recent = new Map([["sys-1", NOW - 10_000]]);
    const nodes = [node("a"), node("b", { recentPrefixes: recent })];
    expect(chosen(pick(job({ prefixHash: "sys-1" }), nodes, NOW))).toBe("b");
    // A different prompt gets no benefit: the tie goes to the smaller id.
    expect(chosen(pick(job({ prefixHash: "sys-2" }), nodes, NOW))).toBe("a");
  });

  it("prefix affinity expires after the TTL", () => {
    const stale = new Map([["sys-1", NOW - 301_000]]);
    expect(chosen(pick(job({ prefixHash: "sys-1" }), [node("a"), node("b", { recentPrefixes: stale })], NOW))).toBe("a");
  });

  it("prefix affinity is off when the node is overloaded", () => {
    const recent = new Map([["sys-1", NOW - 1000]]);
    const loaded = node("b", { recentPrefixes: recent, activeJobs: 3, maxConcurrency: 4 });
    const r = pick(job({ prefixHash: "sys-1" }), [node("a"), loaded], NOW);
    expect(chosen(r)).toBe("a");
    if (r.ok) expect(r.candidates.find((c) => c.nodeId === "b")!.affinity).toBe(false);
  });

  it("unmeasured node gets the median of measured peers, so it is tried once others carry load", () => {
    const fresh = node("fresh", { perf: {} });
    const measured = [
      node("m1", { activeJobs: 1, perf: { [MODEL]: { tokensPerSecond: 40, ttftMs: 200 } } }),
      node("m2", { activeJobs: 1, perf: { [MODEL]: { tokensPerSecond: 50, ttftMs: 200 } } }),
      node("m3", { activeJobs: 1, perf: { [MODEL]: { tokensPerSecond: 60, ttftMs: 200 } } }),
    ];
    const r = pick(job(), [fresh, ...measured], NOW);
    expect(chosen(r)).toBe("fresh");
    if (r.ok) {
      const c = r.candidates.find((x) => x.nodeId === "fresh")!;
      expect(c.speedSource).toBe("prior");
      expect(c.tokensPerSecond).toBe(50);
    }
    // But when measured nodes are idle, the prior ties with the median and the faster measured node wins.
    const idle = measured.map((n) => ({ ...n, activeJobs: 0 }));
    expect(chosen(pick(job(), [fresh, ...idle], NOW))).toBe("m3");
  });

  it("with nobody measured, ties are broken by fewer active jobs, then id, so every new node gets a turn", () => {
    const nodes = [node("c", { perf: {} }), node("b", { perf: {}, activeJobs: 1 }), node("a", { perf: {}, activeJobs: 1 })];
    expect(chosen(pick(job(), nodes, NOW))).toBe("c");
    expect(chosen(pick(job(), [node("b", { perf: {} }), node("a", { perf: {} })], NOW))).toBe("a");
  });

  it("lists every candidate, best first, with its terms", () => {
    const r = pick(job(), [node("a", { rttMs: 100 }), node("b"), node("c", { online: false })], NOW);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.candidates.map((c) => c.nodeId)).toEqual(["b", "a"]);
      expect(r.candidates[0]).toMatchObject({ rttMs: 20, load: 1, speedSource: "measured", ttftMs: 220 });
      expect(r.candidates[0]!.completionMs).toBeCloseTo(220 + 2000);
      expect(r.rejected.offline).toBe(1);
    }
  });

  it("is deterministic: input order does not change the choice", () => {
    const nodes = [node("a"), node("b"), node("c")];
    expect(chosen(pick(job(), nodes, NOW))).toBe(chosen(pick(job(), [...nodes].reverse(), NOW)));
  });
});

describe("pick: many nodes", () => {
  it("returns the same winner as a full ranking, and only the best explainTop candidates in order", () => {
    const nodes = Array.from({ length: 300 }, (_, i) =>
      node(`n${String(i).padStart(3, "0")}`, {
        activeJobs: i % 4,
        rttMs: (i * 37) % 200,
        perf: i % 5 === 0 ? {} : { [MODEL]: { tokensPerSecond: 10 + ((i * 13) % 90), ttftMs: 100 + ((i * 29) % 700) } },
      }),
    );
    const all = pick(job(), nodes, NOW, { explainTop: 1000 });
    const top = pick(job(), nodes, NOW, { explainTop: 5 });
    if (!all.ok || !top.ok) throw new Error("expected a choice");
    expect(all.candidates).toHaveLength(300);
    expect(top.candidates).toEqual(all.candidates.slice(0, 5));
    expect(top.nodeId).toBe(all.nodeId);
    expect(top.candidateCount).toBe(all.candidates.length);
    for (let i = 1; i < all.candidates.length; i++) expect(all.candidates[i]!.cost).toBeGreaterThanOrEqual(all.candidates[i - 1]!.cost);
  });
});

it("the prior for an unmeasured node is the median of the measured ones (even count: mean of the middle two)", () => {
  const measured = [70, 40, 60, 50].map((tps, i) => node(`m${i}`, { activeJobs: 3, perf: { [MODEL]: { tokensPerSecond: tps, ttftMs: 100 * (i + 1) } } }));
  const r = pick(job(), [node("fresh", { perf: {} }), ...measured], NOW, { explainTop: 10 });
  if (!r.ok) throw new Error("expected a choice");
  const fresh = r.candidates.find((c) => c.nodeId === "fresh")!;
  expect(fresh.tokensPerSecond).toBe(55);
  expect(fresh.ttftMs).toBe(20 + 250);
});
