import { afterEach, beforeEach, expect, it } from "vitest";
import { encodeActivationFrame, type CoordinatorMessage, type StageNodeMessage } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeRegistry } from "../registry.js";
import { SessionWorker } from "../sessions/session-worker.js";
import type { NodeSession } from "../workers/node-session.js";
import type { Bus } from "./bus.js";
import { connectNatsBus } from "./nats-bus.js";
import { NATS_URL, describeWithNats, probeNatsServer, randomReplicaId } from "./nats.test-support.js";
import { ReplicaLink } from "./replica-link.js";
import { LEADER_SETTLE_MS, StageRelay } from "./stage-relay.js";

/**
 * Two replicas over the real NATS server, each with its link and its stage relay as the coordinator wires them: C
 * holds a stage node's session, A leads sharded models. What each replica's sharding manager would be told is
 * recorded; the node is a session that records what it is sent.
 */
const NODE = "a".repeat(64);
const quiet = createLogger("silent");

class RecordingSession implements NodeSession {
  readonly json: CoordinatorMessage[] = [];
  readonly binary: Uint8Array[] = [];
  constructor(readonly nodeId: string) {}
  send(message: CoordinatorMessage) { this.json.push(message); }
  sendBinary(data: Uint8Array) { this.binary.push(Uint8Array.from(data)); }
  rttMs() { return 2; }
  close() {}
}

interface Replica {
  id: string;
  bus: Bus;
  registry: NodeRegistry;
  link: ReplicaLink;
  relay: StageRelay;
  /** What the relay handed this replica's sharding manager. */
  told: string[];
  binaries: Uint8Array[];
  leading: boolean[];
  localOffers: number;
}

let clock: ManualClock;
let cluster: string;
let replicas: Replica[];

async function replica(name: string): Promise<Replica> {
  const id = randomReplicaId(name);
  const bus = await connectNatsBus(NATS_URL, id, quiet);
  const registry = new NodeRegistry(clock, 90_000, { onOffline: () => {}, onOnline: () => {} });
  const jobs = { accepted() {}, rejected() {}, part() {}, failed() {}, lost() {}, dispatch() {} };
  const link = new ReplicaLink({ bus, replicaId: id, cluster, registry, jobs, clock, logger: quiet, standing: { applyQuarantine() {} }, onHeldHere() {} });
  const r = { id, bus, registry, link, told: [] as string[], binaries: [] as Uint8Array[], leading: [] as boolean[], localOffers: 0 } as Replica;
  r.relay = new StageRelay({
    bus,
    cluster,
    replicaId: id,
    registry,
    clock,
    logger: quiet,
    intake: {
      onStageMessage: (nodeId, message) => void r.told.push(`${message.type} ${nodeId.slice(0, 4)}`),
      onBinary: (nodeId, data) => {
        r.told.push(`frame ${nodeId.slice(0, 4)}`);
        r.binaries.push(Uint8Array.from(data));
      },
      onNodeLost: (nodeId) => void r.told.push(`lost ${nodeId.slice(0, 4)}`),
      setLeading: (leading) => void r.leading.push(leading),
    },
    peers: () => link.livePeers().map((p) => p.replica),
    onLocalOffer: () => void r.localOffers++,
  });
  r.relay.start();
  await link.start();
  replicas.push(r);
  return r;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The stage node, its session on `r`, seen by the others through r's beat. */
async function stageNodeOn(r: Replica, others: Replica[]): Promise<RecordingSession> {
  const session = new RecordingSession(NODE);
  r.registry.register({ type: "register", public_key: NODE, version: "1.0.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models: [], max_concurrency: 2 }, NODE);
  r.registry.attach(NODE, new SessionWorker(session), session);
  r.link.beat();
  await until(() => others.every((o) => o.registry.get(NODE)?.online === true), "the others see the stage node");
  return session;
}

const frame = (requestId: string, value: number) =>
  encodeActivationFrame({ requestId, stageId: 7, seq: 0, rows: 1, cols: 2, positions: Int32Array.of(0), dtype: "f32", data: Float32Array.of(value, value + 1) });

describeWithNats("stage traffic between replicas over NATS", await probeNatsServer(), () => {
  beforeEach(() => {
    clock = new ManualClock();
    cluster = randomReplicaId("test");
    replicas = [];
  });
  afterEach(async () => {
    for (const r of replicas) {
      r.relay.stop();
      await r.link.stop();
      await r.bus.close();
    }
  });

  it("lets the lowest live replica lead, once it has heard the cluster", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    a.link.beat();
    c.link.beat();
    await until(() => a.link.livePeers().length === 1 && c.link.livePeers().length === 1, "each hears the other");
    a.relay.tick();
    c.relay.tick();
    expect([a.leading, c.leading]).toEqual([[false], [false]]);
    clock.advance(LEADER_SETTLE_MS);
    a.relay.tick();
    c.relay.tick();
    expect([a.leading.at(-1), c.leading.at(-1)]).toEqual([true, false]);
  });

  it("carries the leader's stage messages and frames to a node held by another replica, and the node's answers back", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    expect(a.relay.reachable(NODE)).toBe(true);
    expect(a.relay.reachable("f".repeat(64))).toBe(false);
    expect(a.relay.sendJson("f".repeat(64), { type: "stage.unload", stage_id: 1 })).toBe(false);

    expect(a.relay.sendJson(NODE, { type: "stage.load", stage_id: 7, sha256: "e".repeat(64), start: 0, end: 4 })).toBe(true);
    expect(a.relay.sendBinary(NODE, frame("job-1", 1))).toBe(true);
    await until(() => session.json.length === 1 && session.binary.length === 1, "both reach the node's session on C");
    expect(session.json[0]).toEqual({ type: "stage.load", stage_id: 7, sha256: "e".repeat(64), start: 0, end: 4 });
    expect([...session.binary[0]!]).toEqual([...frame("job-1", 1)]);

    // The node answers on C: its answers go to A, which sent it stage traffic; C's own manager hears none of it.
    const loaded: StageNodeMessage = { type: "stage.loaded", stage_id: 7, ms_per_layer: 1.5 };
    c.relay.onStageMessage(NODE, loaded);
    c.relay.onBinary(NODE, frame("job-1", 5));
    await until(() => a.told.length === 2, "A hears both answers");
    expect(a.told).toEqual(["stage.loaded aaaa", "frame aaaa"]);
    expect([...a.binaries[0]!]).toEqual([...frame("job-1", 5)]);
    expect(c.told).toEqual([]);

    // Offers stay with C's own manager (they reach the leader in beats), and C beats at once.
    c.relay.onStageMessage(NODE, { type: "stage.offer", shards: [] });
    expect(c.told).toEqual(["stage.offer aaaa"]);
    expect(c.localOffers).toBe(1);

    // The node drops on C: C's manager and the leader both hear it.
    c.relay.onNodeLost(NODE);
    await until(() => a.told.length === 3, "A hears the node lost");
    expect(a.told[2]).toBe("lost aaaa");
    expect(c.told[1]).toBe("lost aaaa");
  });

  it("answers stage traffic for a node it no longer holds with the node lost, so the leader re-routes at once", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    await stageNodeOn(c, [a]);
    // The node's session closed on C; A has not had C's next beat yet.
    c.registry.detach(NODE, c.registry.get(NODE)!.worker!, "session closed");
    a.relay.sendBinary(NODE, frame("job-2", 1));
    await until(() => a.told.includes("lost aaaa"), "A hears the node lost");
    a.told.length = 0;
    a.relay.sendJson(NODE, { type: "stage.drop", request_id: "job-2" });
    await until(() => a.told.includes("lost aaaa"), "and again for a stage message");
  });

  it("drops malformed stage messages and frames and changes nothing", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    const encode = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
    for (const g of ["not json", { type: "to_node", from: a.id, node: NODE, message: { type: "stage.load" } }, { type: "from_node", node: "zz", message: { type: "stage.loaded", stage_id: 1, ms_per_layer: 1 } }, { type: "explode" }]) {
      a.bus.publish(`tessera.v1.${cluster}.replica.${c.id}.stages`, encode(g));
      c.bus.publish(`tessera.v1.${cluster}.replica.${a.id}.stages`, encode(g));
    }
    for (const bytes of [Uint8Array.of(), Uint8Array.of(9, 9, 9), Uint8Array.of(1, 0, 1, 2)]) {
      a.bus.publish(`tessera.v1.${cluster}.replica.${c.id}.frames`, bytes);
      c.bus.publish(`tessera.v1.${cluster}.replica.${a.id}.frames`, bytes);
    }
    await a.bus.flush();
    await c.bus.flush();
    // A good message after the garbage still lands.
    a.relay.sendJson(NODE, { type: "stage.unload", stage_id: 3 });
    await until(() => session.json.length === 1, "the good message lands");
    expect(session.json).toEqual([{ type: "stage.unload", stage_id: 3 }]);
    expect(session.binary).toEqual([]);
    expect([a.told, c.told]).toEqual([[], []]);
  });
});
