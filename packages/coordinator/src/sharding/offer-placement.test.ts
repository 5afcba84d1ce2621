import { describe, expect, it } from "vitest";
import { CoordinatorMessage, ShardOffer, type StageLoad } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeRegistry } from "../registry.js";
import { SessionWorker } from "../sessions/session-worker.js";
import type { NodeSession } from "../workers/node-session.js";
import { checkShardOffer, msPerLayerFloor } from "./offer-check.js";
import { ShardingManager } from "./sharding-manager.js";

/**
 * A node's offer says what a layer costs on its own stage backend (memory as the backend allocates it, time per
 * layer as measured there), and placement sizes spans by it before any span is loaded; offers that cannot be true
 * are refused with bad_request.
 */
const SHA = "d".repeat(64);
const MiB = 2 ** 20;
const offer = (o: Partial<ShardOffer> = {}): ShardOffer => ({ model: "big", sha256: SHA, layer_count: 12, bytes_per_layer: 10 * MiB, free_memory_bytes: 1e12, ...o });

function setup(ids: string[], replicas = 1) {
  const clock = new ManualClock();
  const registry = new NodeRegistry(clock, 60_000, { onOffline() {}, onOnline() {} });
  const sent = new Map<string, CoordinatorMessage[]>();
  for (const id of ids) {
    registry.register({ type: "register", public_key: id, version: "t", hardware: { cpu_cores: 1, ram_mb: 1, gpus: [] }, models: [], max_concurrency: 1 }, `op-${id}`);
    const box: CoordinatorMessage[] = [];
    sent.set(id, box);
    const session: NodeSession = { nodeId: id, send: (m) => void box.push(m), sendBinary: () => undefined, rttMs: () => 1, close: () => undefined };
    registry.attach(id, new SessionWorker(session), session);
  }
  const warnings: Array<Record<string, unknown>> = [];
  const logger = createLogger("silent");
  logger.warn = ((fields: Record<string, unknown>) => void warnings.push(fields)) as typeof logger.warn;
  // Not leading while the offers come in, so that one placement sees them all (setLeading(true) places).
  const manager = new ShardingManager({ registry, jobs: { accepted() {}, rejected() {}, part() {}, failed() {}, lost() {} }, clock, logger, replicas, leading: false });
  /** Places the offers heard so far, once, and answers each node's layers in that placement. */
  const layers = () => {
    manager.setLeading(true);
    const out: Record<string, number> = {};
    for (const [id, box] of sent) out[id] = box.filter((m): m is StageLoad => m.type === "stage.load").reduce((n, m) => n + m.end - m.start, 0);
    return out;
  };
  return { manager, sent, layers, warnings };
}

describe("placement from the offers' per-backend figures", () => {
  it("a node whose offer measured a 5x faster layer gets 5x the layers, before any span is loaded", () => {
    const t = setup(["gpu", "cpu"]);
    t.manager.onStageMessage("gpu", { type: "stage.offer", shards: [offer({ ms_per_layer: 0.2 })] });
    t.manager.onStageMessage("cpu", { type: "stage.offer", shards: [offer({ ms_per_layer: 1 })] });
    expect(t.layers()).toEqual({ gpu: 10, cpu: 2 });
    // The stages being loaded carry the offered speed, so path choice uses it before stage.loaded says more.
    expect([...t.manager.model(SHA)!.stages.values()].filter((s) => s.nodeId === "gpu").map((s) => s.msPerLayer)).toEqual([0.2]);
  });

  it("an offer without a measured speed (an older daemon) counts as the default, as before", () => {
    const t = setup(["a", "b"]);
    t.manager.onStageMessage("a", { type: "stage.offer", shards: [offer()] });
    t.manager.onStageMessage("b", { type: "stage.offer", shards: [offer()] });
    expect(t.layers()).toEqual({ a: 6, b: 6 });
  });

  it("divides a node's memory by what a layer takes on its backend, not by the file's bytes", () => {
    const t = setup(["fast", "slow"]);
    // 100 MiB offered, 10 % headroom: 9 layers of the file's 10 MiB, but only 3 of the 30 MiB its backend allocates.
    t.manager.onStageMessage("fast", { type: "stage.offer", shards: [offer({ free_memory_bytes: 100 * MiB, span_bytes_per_layer: 30 * MiB, ms_per_layer: 0.1 })] });
    t.manager.onStageMessage("slow", { type: "stage.offer", shards: [offer({ ms_per_layer: 1 })] });
    expect(t.layers()).toEqual({ fast: 3, slow: 9 });
  });

  it("refuses an offer that cannot be true with bad_request and places without it", () => {
    const t = setup(["honest", "liar"]);
    t.manager.onStageMessage("honest", { type: "stage.offer", shards: [offer({ ms_per_layer: 1 })] });
    t.manager.onStageMessage("liar", { type: "stage.offer", shards: [offer({ span_bytes_per_layer: 1, ms_per_layer: 1e-9 })] });
    expect(t.manager.offersOf("liar")).toEqual([]);
    expect(t.layers()).toEqual({ honest: 12, liar: 0 });
    expect(t.warnings).toEqual([expect.objectContaining({ node: "liar", code: "bad_request", reason: expect.stringMatching(/span_bytes_per_layer 1 is less than/), told: true })]);
  });
});

describe("a refused offer is told to the node (offer.refused)", () => {
  it("goes down the node's session with the model, the file, the code, the field at fault and the reason", () => {
    const t = setup(["honest", "liar"]);
    t.manager.onStageMessage("honest", { type: "stage.offer", shards: [offer({ ms_per_layer: 1 })] });
    t.manager.onStageMessage("liar", { type: "stage.offer", shards: [offer({ ms_per_layer: 1e-9 })] });
    const told = t.sent.get("liar")!.filter((m) => m.type === "offer.refused");
    expect(told).toEqual([{
      type: "offer.refused",
      model: "big",
      sha256: SHA,
      code: "bad_request",
      param: "ms_per_layer",
      message: expect.stringMatching(/ms_per_layer 1e-9 is faster than reading a layer of 10485760 bytes allows/),
    }]);
    // What the node is sent is what its daemon parses (the same schema), and the honest node hears nothing of it.
    expect(CoordinatorMessage.safeParse(told[0]).success).toBe(true);
    expect(t.sent.get("honest")!.filter((m) => m.type === "offer.refused")).toEqual([]);
  });

  it("a layer count other than the file's first offer said is refused with param layer_count, each time it is offered", () => {
    const t = setup(["first", "other"]);
    t.manager.onStageMessage("first", { type: "stage.offer", shards: [offer()] });
    t.manager.onStageMessage("other", { type: "stage.offer", shards: [offer({ layer_count: 13 })] });
    t.manager.onStageMessage("other", { type: "stage.offer", shards: [offer({ layer_count: 13 })] });
    const told = t.sent.get("other")!.filter((m) => m.type === "offer.refused");
    expect(told.map((m) => m.type === "offer.refused" && [m.param, m.message])).toEqual([
      ["layer_count", expect.stringMatching(/layer_count 13, but the file has 12 layers/)],
      ["layer_count", expect.stringMatching(/layer_count 13, but the file has 12 layers/)],
    ]);
  });

  it("an offer heard from another replica's beat is only logged: the replica holding the node's session tells it", () => {
    const t = setup(["peer"]);
    t.manager.setPeerOffers("peer", [offer({ span_bytes_per_layer: 1 })]);
    expect(t.sent.get("peer")!.filter((m) => m.type === "offer.refused")).toEqual([]);
    expect(t.warnings).toEqual([expect.objectContaining({ node: "peer", param: "span_bytes_per_layer", told: false })]);
  });

  it("a node without a session here is not told, and the log says so", () => {
    const t = setup([]);
    t.manager.onStageMessage("gone", { type: "stage.offer", shards: [offer({ ms_per_layer: 1e-9 })] });
    expect(t.warnings).toEqual([expect.objectContaining({ node: "gone", code: "bad_request", told: false })]);
  });
});

describe("checkShardOffer", () => {
  const pinned = { layerCount: 12, bytesPerLayer: 10 * MiB };
  it.each([
    ["an honest offer", offer({ span_bytes_per_layer: 12 * MiB, ms_per_layer: 0.5 }), undefined],
    ["an offer without the backend's figures", offer(), undefined],
    ["a layer in the file's own bytes exactly", offer({ span_bytes_per_layer: 10 * MiB }), undefined],
    ["another layer count for the same hash", offer({ layer_count: 13 }), ["layer_count", /layer_count 13, but the file has 12/]],
    ["another file size per layer for the same hash", offer({ bytes_per_layer: MiB }), ["bytes_per_layer", /bytes_per_layer 1048576, but the file's largest layer is 10485760/]],
    ["a layer in fewer bytes than the file stores it in", offer({ span_bytes_per_layer: 10 * MiB - 1 }), ["span_bytes_per_layer", /less than the 10485760 bytes/]],
    ["a layer faster than memory can be read", offer({ ms_per_layer: 0.0005 }), ["ms_per_layer", /faster than reading a layer of 10485760 bytes allows/]],
  ] as const)("%s", (_name, o, refused) => {
    const r = checkShardOffer(o, pinned);
    if (!refused) expect(r).toEqual({ ok: true });
    else expect(r).toEqual({ ok: false, code: "bad_request", param: refused[0], message: expect.stringMatching(refused[1]) });
  });

  it("the speed floor: a microsecond, or the layer's bytes at 10 TB/s when that is longer", () => {
    expect(msPerLayerFloor(1000)).toBe(0.001);
    expect(msPerLayerFloor(1e9)).toBeCloseTo(0.1, 12);
  });

  it("the schema bounds each field before the check: a zero or negative time, a fractional byte count", () => {
    expect(ShardOffer.safeParse(offer({ ms_per_layer: 0 })).success).toBe(false);
    expect(ShardOffer.safeParse(offer({ ms_per_layer: -1 })).success).toBe(false);
    expect(ShardOffer.safeParse(offer({ span_bytes_per_layer: 1.5 })).success).toBe(false);
    expect(ShardOffer.safeParse(offer({ span_bytes_per_layer: 2 ** 51 })).success).toBe(false);
    expect(ShardOffer.safeParse(offer({ span_bytes_per_layer: 11 * MiB, ms_per_layer: 0.3 })).success).toBe(true);
  });
});
