import { describe, expect, it } from "vitest";
import { choosePath } from "./choose-path.js";
import { placeStages } from "./place-stages.js";
import type { LayerMapSpan, PathCost } from "./types.js";

const span = (nodeId: string, start: number, end: number): LayerMapSpan => ({ nodeId, start, end });

describe("choosePath", () => {
  it("one chain: uses it, cost = Σ RTT + Σ per-layer compute", () => {
    const r = choosePath([span("a", 0, 4), span("b", 4, 8)], { a: { msPerLayer: 2, rttMs: 10 }, b: { msPerLayer: 3, rttMs: 20 } });
    expect(r).toEqual({ ok: true, segments: [span("a", 0, 4), span("b", 4, 8)], costMs: 10 + 8 + 20 + 12 });
  });

  it("per-layer compute: picks the faster replica of a span", () => {
    const map = [span("a", 0, 4), span("slow", 4, 8), span("fast", 4, 8)];
    const costs = { a: { msPerLayer: 1, rttMs: 10 }, slow: { msPerLayer: 5, rttMs: 10 }, fast: { msPerLayer: 1, rttMs: 10 } };
    const r = choosePath(map, costs);
    expect(r.ok && r.segments.map((s) => s.nodeId)).toEqual(["a", "fast"]);
  });

  it("hop RTT: a nearer replica beats a slightly faster far one", () => {
    const map = [span("near", 0, 4), span("far", 0, 4)];
    const costs = { near: { msPerLayer: 2, rttMs: 10 }, far: { msPerLayer: 1, rttMs: 200 } };
    expect(choosePath(map, costs).ok && (choosePath(map, costs) as { segments: LayerMapSpan[] }).segments[0]!.nodeId).toBe("near");
  });

  it("fewer hops win when an extra hop costs more than the compute it saves", () => {
    // "whole" holds everything; splitting onto the marginally faster pair costs an extra RTT.
    const map = [span("whole", 0, 8), span("x", 0, 4), span("y", 4, 8)];
    const costs = { whole: { msPerLayer: 2, rttMs: 40 }, x: { msPerLayer: 1.9, rttMs: 40 }, y: { msPerLayer: 1.9, rttMs: 40 } };
    const r = choosePath(map, costs);
    expect(r.ok && r.segments).toEqual([span("whole", 0, 8)]);
    // When "whole" is much slower, the extra hop pays for itself: 2·40 + 8·1.9 = 95.2 < 40 + 8·20 = 200.
    const faster = { ...costs, whole: { msPerLayer: 20, rttMs: 40 } };
    const r2 = choosePath(map, faster);
    expect(r2.ok && r2.segments.map((s) => s.nodeId)).toEqual(["x", "y"]);
  });

  it("switches replica mid-span when chains are not aligned", () => {
    // Chain 0: a[0,6) b[6,12). Chain 1: c[0,3) d[3,12). Best: a for 0–5 (fastest), then d from 6 (fast).
    const map = [span("a", 0, 6), span("b", 6, 12), span("c", 0, 3), span("d", 3, 12)];
    const costs: Record<string, PathCost> = {
      a: { msPerLayer: 1, rttMs: 10 },
      b: { msPerLayer: 10, rttMs: 10 },
      c: { msPerLayer: 10, rttMs: 10 },
      d: { msPerLayer: 2, rttMs: 10 },
    };
    const r = choosePath(map, costs);
    expect(r.ok && r.segments).toEqual([span("a", 0, 6), span("d", 6, 12)]);
    expect(r.ok && r.costMs).toBe(10 + 6 + 10 + 12);
  });

  it("routes around an excluded (dead) stage onto its replica", () => {
    const placed = placeStages({
      layerCount: 12,
      nodes: ["a", "b", "c", "d"].map((id) => ({ id, freeMemoryBytes: 1e12, msPerLayer: 1, rttMs: 10 })),
      replicas: 2,
    });
    if (!placed.ok) throw new Error(placed.message);
    const costs = new Map(["a", "b", "c", "d"].map((id) => [id, { msPerLayer: 1, rttMs: 10 }]));
    const before = choosePath(placed.stages, costs);
    if (!before.ok) throw new Error(before.message);
    const dead = before.segments[0]!.nodeId;
    const after = choosePath(placed.stages, costs, { exclude: new Set([dead]) });
    expect(after.ok).toBe(true);
    if (after.ok) {
      expect(after.segments.map((s) => s.nodeId)).not.toContain(dead);
      expect(after.segments[0]!.start).toBe(0);
      expect(after.segments[after.segments.length - 1]!.end).toBe(12);
    }
  });

  it("names the uncovered layers when no replica is left", () => {
    const r = choosePath([span("a", 0, 4), span("b", 4, 8), span("c", 6, 8)], {}, { exclude: new Set(["b"]) });
    expect(r).toMatchObject({ ok: false, reason: "uncovered_layers", missingLayers: [{ start: 4, end: 6 }] });
    if (!r.ok) expect(r.message).toBe("no available node holds layers 4–5");
  });

  it("layerCount beyond the map's end reports the tail as uncovered", () => {
    const r = choosePath([span("a", 0, 4)], {}, { layerCount: 6 });
    expect(r).toMatchObject({ ok: false, missingLayers: [{ start: 4, end: 6 }] });
  });

  it("unmeasured nodes get the median per-layer time and a 300 ms RTT", () => {
    const map = [span("known", 0, 4), span("new", 0, 4)];
    const r = choosePath(map, { known: { msPerLayer: 5, rttMs: 400 } });
    // new: 300 + 4·5 = 320 < known: 400 + 20 = 420.
    expect(r).toMatchObject({ ok: true, segments: [span("new", 0, 4)], costMs: 320 });
  });
});
