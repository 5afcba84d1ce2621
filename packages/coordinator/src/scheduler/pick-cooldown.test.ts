import { describe, expect, it } from "vitest";
import { pick } from "./pick-node.js";
import type { NodeSnapshot } from "./types.js";

const MODEL = "m";
const job = { model: MODEL, promptTokens: 100, maxTokens: 100 };

function node(id: string, over: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    id,
    online: true,
    draining: false,
    quarantined: false,
    models: [MODEL],
    activeJobs: 0,
    maxConcurrency: 2,
    rttMs: 20,
    reputation: 1,
    perf: { [MODEL]: { tokensPerSecond: 50, ttftMs: 200 } },
    ...over,
  };
}

const fast = { perf: { [MODEL]: { tokensPerSecond: 500, ttftMs: 20 } } };

describe("pick: a node in cooldown serves only when no other node can take the job now", () => {
  it.each<[string, NodeSnapshot[], string | undefined, Set<string>?]>([
    ["a faster node in cooldown loses to a slower one that is not", [node("cool", { coolingDown: true, ...fast }), node("ok")], "ok"],
    ["a lone node in cooldown still serves (a one-node network keeps working)", [node("cool", { coolingDown: true })], "cool"],
    ["every other node busy: the cooling node serves rather than the job waiting", [node("cool", { coolingDown: true }), node("busy", { activeJobs: 2 })], "cool"],
    ["every other node already failed this job: the cooling node serves", [node("cool", { coolingDown: true }), node("failed")], "cool", new Set(["failed"])],
    ["a loaded healthy node still beats an idle cooling one", [node("cool", { coolingDown: true }), node("ok", { activeJobs: 1 })], "ok"],
    ["among cooling nodes the usual cost decides", [node("c1", { coolingDown: true }), node("c2", { coolingDown: true, ...fast })], "c2"],
    ["quarantine is not a cooldown: a quarantined node never serves", [node("q", { quarantined: true })], undefined],
  ])("%s", (_why, nodes, expected, exclude) => {
    const r = pick(job, nodes, 0, exclude ? { exclude } : {});
    if (expected === undefined) {
      expect(r).toMatchObject({ ok: false, reason: "all_quarantined" });
    } else {
      expect(r).toMatchObject({ ok: true, nodeId: expected });
    }
  });

  it("the explanation says which candidates were cooling down", () => {
    const r = pick(job, [node("cool", { coolingDown: true, ...fast }), node("ok")], 0);
    if (!r.ok) throw new Error(r.reason);
    expect(r.candidates.map((c) => [c.nodeId, c.coolingDown])).toEqual([
      ["ok", false],
      ["cool", true],
    ]);
  });
});
