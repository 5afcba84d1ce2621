import { expect, it } from "vitest";
import type { CoordinatorMessage, ShardOffer } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeRegistry } from "../registry.js";
import { SessionWorker } from "../sessions/session-worker.js";
import type { NodeSession } from "../workers/node-session.js";
import { ShardingManager } from "./sharding-manager.js";

/**
 * A sharding manager that does not lead (a replica other than the leader, bus/stage-relay.ts) keeps the offers it
 * hears and does nothing else; when it starts leading it places spans and registers the pipeline, and when it stops
 * it retires the pipeline and unloads its stages. Offers of nodes on other replicas come and go by their beats.
 */
const SHA = "c".repeat(64);
const offer = (layers = 4): ShardOffer => ({ model: "big", sha256: SHA, layer_count: layers, bytes_per_layer: 1000, free_memory_bytes: 1e9 });

function setup(leading: boolean) {
  const clock = new ManualClock();
  const registry = new NodeRegistry(clock, 60_000, { onOffline() {}, onOnline() {} });
  const sent = new Map<string, CoordinatorMessage[]>();
  for (const id of ["n1", "n2"]) {
    registry.register({ type: "register", public_key: id, version: "t", hardware: { cpu_cores: 1, ram_mb: 1, gpus: [] }, models: [], max_concurrency: 1 }, `op-${id}`);
    const box: CoordinatorMessage[] = [];
    sent.set(id, box);
    const session: NodeSession = { nodeId: id, send: (m) => void box.push(m), sendBinary: () => undefined, rttMs: () => 1, close: () => undefined };
    registry.attach(id, new SessionWorker(session), session);
  }
  const manager = new ShardingManager({ registry, jobs: { accepted() {}, rejected() {}, part() {}, failed() {}, lost() {} }, clock, logger: createLogger("silent"), replicas: 1, leading, firstStageId: 1000 });
  const pipelineOnline = () => [...registry.all()].some((n) => n.models.some((m) => m.backend === "pipeline") && n.online);
  return { manager, sent, registry, pipelineOnline };
}

it("keeps offers without placing while it does not lead, and places them when it starts", () => {
  const t = setup(false);
  t.manager.onStageMessage("n1", { type: "stage.offer", shards: [offer()] });
  t.manager.setPeerOffers("n2", [offer()]);
  expect(t.manager.offersOf("n1")).toEqual([offer()]);
  expect(t.manager.offersOf("n2")).toEqual([offer()]);
  expect([...t.sent.values()].flat()).toEqual([]);
  expect(t.pipelineOnline()).toBe(false);
  expect(t.manager.summaries().size).toBe(0);
  // The leader's pipelines, as its beats say them, are what this replica's models list shows.
  const split = { model: "big", layers: 4, stages: 2, nodes: 2, ready: true };
  t.manager.setPeerPipeline("p".repeat(64), split);
  expect([...t.manager.summaries()]).toEqual([["p".repeat(64), split]]);
  t.manager.setPeerPipeline("p".repeat(64), undefined);
  expect(t.manager.summaries().size).toBe(0);

  t.manager.setLeading(true);
  expect(t.pipelineOnline()).toBe(true);
  const loads = [...t.sent.values()].flat().filter((m) => m.type === "stage.load");
  expect(loads.map((m) => (m as { stage_id: number }).stage_id).sort()).toEqual([1000, 1001]);
  expect(t.manager.summaries().size).toBe(1);
});

it("retires the pipeline and unloads its stages when it stops leading; a peer's withdrawn offer is gone", () => {
  const t = setup(true);
  t.manager.onStageMessage("n1", { type: "stage.offer", shards: [offer()] });
  t.manager.setPeerOffers("n2", [offer()]);
  for (const [id, box] of t.sent) {
    for (const m of box) if (m.type === "stage.load") t.manager.onStageMessage(id, { type: "stage.loaded", stage_id: m.stage_id, ms_per_layer: 1 });
  }
  expect(t.pipelineOnline()).toBe(true);

  t.manager.setPeerOffers("n2", []);
  expect(t.manager.offersOf("n2")).toEqual([]);
  t.manager.setLeading(false);
  expect(t.pipelineOnline()).toBe(false);
  const unloads = [...t.sent.values()].flat().filter((m) => m.type === "stage.unload");
  expect(unloads.length).toBeGreaterThanOrEqual(1);
  expect(t.manager.model(SHA)!.stages.size).toBe(0);
  // The offers stay, for the day it leads again.
  expect(t.manager.offersOf("n1")).toEqual([offer()]);
});
