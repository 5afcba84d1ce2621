import { describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { placeStages } from "./place-stages.js";
import type { PlacementNode, PlaceStagesResult, StageAssignment } from "./types.js";

const GB = 1024 ** 3;

function n(id: string, msPerLayer: number, freeGb = 100, rttMs = 10): PlacementNode {
  return { id, msPerLayer, freeMemoryBytes: freeGb * GB, rttMs };
}

function spans(r: PlaceStagesResult, chain = 0): Array<[string, number, number]> {
  if (!r.ok) throw new Error(r.message);
  return r.stages.filter((s) => s.chain === chain).map((s) => [s.nodeId, s.start, s.end]);
}

/** Every layer in [0, L) is held exactly once per chain. */
function expectCompleteChains(stages: StageAssignment[], L: number, chains: number): void {
  for (let c = 0; c < chains; c++) {
    const own = stages.filter((s) => s.chain === c).sort((a, b) => a.start - b.start);
    expect(own[0]!.start).toBe(0);
    for (let i = 1; i < own.length; i++) expect(own[i]!.start).toBe(own[i - 1]!.end);
    expect(own[own.length - 1]!.end).toBe(L);
    for (const s of own) expect(s.end - s.start).toBeGreaterThanOrEqual(1);
  }
}

describe("placeStages", () => {
  it.each([
    ["equal nodes split evenly", [n("a", 1), n("b", 1), n("c", 1)], 12, [["a", 0, 4], ["b", 4, 8], ["c", 8, 12]]],
    ["a node twice as fast takes twice the layers", [n("a", 1), n("b", 2)], 12, [["a", 0, 8], ["b", 8, 12]]],
    ["speeds 1×, 0.5×, 0.25×", [n("a", 1), n("b", 2), n("c", 4)], 14, [["a", 0, 8], ["b", 8, 12], ["c", 12, 14]]],
    ["a very slow node still gets one layer", [n("a", 1), n("b", 1000)], 10, [["a", 0, 9], ["b", 9, 10]]],
  ] as const)("speed: %s", (_name, nodes, L, expected) => {
    const r = placeStages({ layerCount: L, nodes, replicas: 1 });
    expect(spans(r)).toEqual(expected);
  });

  it("memory caps the fast node and the rest spills to the slower one", () => {
    // a: 4 GB free, 10 % headroom, 1 GB per layer → holds 3 layers although it is 4× faster.
    const r = placeStages({ layerCount: 10, nodes: [n("a", 1, 4), n("b", 4, 100)], replicas: 1, bytesPerLayer: GB });
    expect(spans(r)).toEqual([["a", 0, 3], ["b", 3, 10]]);
  });

  it("a node's own bytesPerLayer overrides the default", () => {
    const a = { ...n("a", 1, 4), bytesPerLayer: GB / 4 }; // 14 layers fit
    const r = placeStages({ layerCount: 10, nodes: [a, n("b", 4, 100)], replicas: 1, bytesPerLayer: GB });
    expect(spans(r)).toEqual([["a", 0, 8], ["b", 8, 10]]);
  });

  it("with enough nodes every span gets a replica: two complete chains with balanced speed", () => {
    const nodes = [n("a", 1), n("b", 1), n("c", 2), n("d", 2)];
    const r = placeStages({ layerCount: 12, nodes, replicas: 2 });
    expect(r.ok && r.replicasPlaced).toBe(2);
    if (!r.ok) return;
    expectCompleteChains(r.stages, 12, 2);
    // Fast nodes are dealt to different chains, so both chains have the same bottleneck.
    expect(r.chainBottleneckMs[0]).toBe(r.chainBottleneckMs[1]);
    expect(new Set(r.stages.filter((s) => s.chain === 0).map((s) => s.nodeId))).not.toEqual(new Set(["a", "b"]));
  });

  it("too few nodes for the replicas asked: places what it can and says so", () => {
    const r = placeStages({ layerCount: 8, nodes: [n("a", 1, 6), n("b", 1, 6)], replicas: 2, bytesPerLayer: GB });
    // Each node holds 5 layers: one chain needs both.
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.replicasRequested).toBe(2);
      expect(r.replicasPlaced).toBe(1);
      expectCompleteChains(r.stages, 8, 1);
    }
  });

  it("falls back to balancing memory when balancing speed leaves a chain short", () => {
    // Speed dealing pairs a+c and b+d; a+c can hold only 2+2 = 4 of 6 layers. Memory dealing pairs big with small.
    const nodes = [
      { ...n("a", 1), freeMemoryBytes: 2 * GB },
      { ...n("b", 1.1), freeMemoryBytes: 8 * GB },
      { ...n("c", 2), freeMemoryBytes: 2 * GB },
      { ...n("d", 2.1), freeMemoryBytes: 8 * GB },
    ];
    const r = placeStages({ layerCount: 6, nodes, replicas: 2, bytesPerLayer: GB, memoryHeadroom: 0 });
    expect(r.ok && r.replicasPlaced).toBe(2);
    if (r.ok) expectCompleteChains(r.stages, 6, 2);
  });

  it("names the layers that cannot be covered", () => {
    const r = placeStages({ layerCount: 32, nodes: [n("a", 1, 10), n("b", 1, 10)], replicas: 2, bytesPerLayer: GB });
    expect(r).toMatchObject({ ok: false, reason: "insufficient_memory", missingLayers: [{ start: 18, end: 32 }] });
    if (!r.ok) expect(r.message).toContain("layers 18–31 cannot be covered");
  });

  it("no nodes: every layer is missing", () => {
    const r = placeStages({ layerCount: 4, nodes: [] });
    expect(r).toMatchObject({ ok: false, missingLayers: [{ start: 0, end: 4 }] });
  });

  it("a node that cannot hold one layer is reported unused, as are surplus nodes", () => {
    const nodes = [n("tiny", 1, 0.5), n("a", 1), n("b", 2), n("c", 3)];
    const r = placeStages({ layerCount: 1, nodes, replicas: 2, bytesPerLayer: GB });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.stages.map((s) => s.nodeId).sort()).toEqual(["a", "b"]);
      expect(r.unused).toEqual(
        expect.arrayContaining([
          { nodeId: "tiny", reason: "insufficient_memory" },
          { nodeId: "c", reason: "surplus" },
        ]),
      );
    }
  });

  it("does not depend on the order of the nodes", () => {
    const nodes = [n("a", 1), n("b", 2), n("c", 3), n("d", 1.5)];
    const one = placeStages({ layerCount: 20, nodes });
    const two = placeStages({ layerCount: 20, nodes: [...nodes].reverse() });
    expect(one).toEqual(two);
  });

  it.each([
    [{ layerCount: 0, nodes: [] }],
    [{ layerCount: 4, nodes: [n("a", 0)] }],
    [{ layerCount: 4, nodes: [n("a", 1), n("a", 2)] }],
    [{ layerCount: 4, nodes: [n("a", 1)], replicas: 0 }],
  ])("rejects bad input with bad_request (%#)", (input) => {
    expect(() => placeStages(input)).toThrow(TesseraError);
  });
});
