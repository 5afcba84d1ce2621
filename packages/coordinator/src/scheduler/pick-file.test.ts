import { describe, expect, it } from "vitest";
import { pick } from "./pick-node.js";
import type { NodeSnapshot } from "./types.js";

const MODEL = "m";
const FILE = "a".repeat(64);
const OTHER = "b".repeat(64);
/** A continuation of an answer generated with FILE. */
const continuation = { model: MODEL, promptTokens: 100, maxTokens: 100, modelSha256: FILE };

function node(id: string, file: string | undefined, over: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return {
    id,
    online: true,
    draining: false,
    quarantined: false,
    models: [MODEL],
    ...(file ? { modelFiles: { [MODEL]: file } } : {}),
    activeJobs: 0,
    maxConcurrency: 2,
    rttMs: 20,
    reputation: 1,
    perf: { [MODEL]: { tokensPerSecond: 50, ttftMs: 200 } },
    ...over,
  };
}

const fast = { perf: { [MODEL]: { tokensPerSecond: 500, ttftMs: 20 } } };

describe("pick: a continuation goes to the node holding its model file first (design.md \"Continuations\")", () => {
  it.each<[string, NodeSnapshot[], string, Set<string>?]>([
    ["the same file beats a faster node of unknown file", [node("unknown", undefined, fast), node("same", FILE)], "same"],
    ["the same file beats a faster node of another file", [node("other", OTHER, fast), node("same", FILE)], "same"],
    ["an unknown file beats a faster node of another file", [node("other", OTHER, fast), node("unknown", undefined)], "unknown"],
    ["the same file beats a healthy node even when it is cooling down", [node("unknown", undefined), node("same", FILE, { coolingDown: true })], "same"],
    ["the same-file node busy: the job moves on now rather than waits", [node("same", FILE, { activeJobs: 2 }), node("unknown", undefined)], "unknown"],
    ["only another file left: it serves (a continuation is never stranded)", [node("other", OTHER)], "other"],
    ["the same-file node already failed this job: another file serves", [node("same", FILE), node("other", OTHER)], "other", new Set(["same"])],
    ["among same-file nodes the usual cost decides", [node("s1", FILE), node("s2", FILE, fast), node("o", OTHER, fast)], "s2"],
    ["another model's file does not count", [node("elsewhere", undefined, { modelFiles: { other: FILE }, ...fast }), node("same", FILE)], "same"],
  ])("%s", (_why, nodes, expected, exclude) => {
    expect(pick(continuation, nodes, 0, exclude ? { exclude } : {})).toMatchObject({ ok: true, nodeId: expected });
  });

  it("a job that names no file ignores files: the cheapest node wins", () => {
    const { modelSha256: _, ...fresh } = continuation;
    const r = pick(fresh, [node("same", FILE), node("other", OTHER, fast)], 0);
    expect(r).toMatchObject({ ok: true, nodeId: "other" });
    if (r.ok) expect(r.candidates.every((c) => c.file === undefined)).toBe(true);
  });

  it("the explanation says each candidate's file class", () => {
    const r = pick(continuation, [node("other", OTHER, fast), node("unknown", undefined, fast), node("same", FILE)], 0);
    if (!r.ok) throw new Error(r.reason);
    expect(r.candidates.map((c) => [c.nodeId, c.file])).toEqual([
      ["same", "same"],
      ["unknown", "unknown"],
      ["other", "other"],
    ]);
  });
});
