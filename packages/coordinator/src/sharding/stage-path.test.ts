import { describe, expect, it } from "vitest";
import { chooseStagePath, type LoadedStage } from "./stage-path.js";

const st = (stageId: number, nodeId: string, start: number, end: number, msPerLayer = 1): LoadedStage => ({ stageId, nodeId, start, end, msPerLayer });

describe("chooseStagePath", () => {
  it("chains whole spans and prefers the faster replica of a span", () => {
    const stages = [st(1, "a", 0, 2), st(2, "b", 2, 4, 5), st(3, "c", 2, 4, 1), st(4, "d", 4, 6)];
    const r = chooseStagePath(stages, () => 2, 6);
    expect(r.ok && r.stages.map((s) => s.nodeId)).toEqual(["a", "c", "d"]);
    expect(r.ok && r.costMs).toBe(3 * 2 + 6);
  });

  it("routes around an excluded node through a replica with a different split", () => {
    const stages = [st(1, "a", 0, 2), st(2, "b", 2, 6), st(3, "c", 0, 3), st(4, "d", 3, 6)];
    const r = chooseStagePath(stages, () => 1, 6, new Set(["b"]));
    expect(r.ok && r.stages.map((s) => s.stageId)).toEqual([3, 4]);
  });

  it("names the layers nobody holds", () => {
    const r = chooseStagePath([st(1, "a", 0, 2), st(2, "b", 4, 6)], () => 1, 6);
    expect(r).toMatchObject({ ok: false, missingLayers: [{ start: 2, end: 4 }] });
    expect(!r.ok && r.message).toBe("layers 2–3 are held by no online stage");
  });

  it("takes RTT into account: one slower node beats two fast hops over a slow link", () => {
    const stages = [st(1, "a", 0, 4, 2), st(2, "b", 0, 2, 1), st(3, "c", 2, 4, 1)];
    const rtt = (id: string) => (id === "a" ? 1 : 10);
    const r = chooseStagePath(stages, rtt, 4);
    expect(r.ok && r.stages.map((s) => s.nodeId)).toEqual(["a"]);
  });
});
