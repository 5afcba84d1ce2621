import { afterEach, beforeEach, expect, it } from "vitest";
import { encodeActivationFrame, type CoordinatorMessage, type StageNodeMessage } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeRegistry } from "../registry.js";
import { SessionWorker } from "../sessions/session-worker.js";
import type { NodeSession } from "../workers/node-session.js";
import type { Bus } from "./bus.js";
import { connectNatsBus, type NatsBusOptions } from "./nats-bus.js";
import { NATS_URL, describeWithNats, probeNatsServer, randomReplicaId } from "./nats.test-support.js";
import { ReplicaLink } from "./replica-link.js";
import { AWAITED_ANSWER_TTL_MS, SessionRelay } from "./session-relay.js";
import { encodeFrameEnvelope } from "./stage-frame-envelope.js";
import { LEADER_SETTLE_MS, ShardingLeader } from "./sharding-leader.js";

/**
 * Two replicas over the real NATS server, each with its link and its session relay as the coordinator wires them: C
 * holds a node's session, A reaches it (as the leader of sharded models, a spot check's asker, an embedding
 * request's). What each replica's sharding manager, spot checks and embedding requests would be told is recorded;
 * the node is a session that records what it is sent.
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
  relay: SessionRelay;
  leader: ShardingLeader;
  /** What the relay handed this replica's sharding manager, spot checks and embedding requests. */
  told: string[];
  binaries: Uint8Array[];
  leading: boolean[];
  localOffers: number;
}

let clock: ManualClock;
let cluster: string;
let replicas: Replica[];

async function replica(name: string, busOptions: NatsBusOptions = {}): Promise<Replica> {
  const id = randomReplicaId(name);
  const bus = await connectNatsBus(NATS_URL, id, quiet, busOptions);
  const registry = new NodeRegistry(clock, 90_000, { onOffline: () => {}, onOnline: () => {} });
  const jobs = { accepted() {}, rejected() {}, part() {}, failed() {}, lost() {}, dispatch() {} };
  const link = new ReplicaLink({ bus, replicaId: id, cluster, registry, jobs, clock, logger: quiet, standing: { applyQuarantine() {}, applyJudgment() {} }, onHeldHere() {} });
  const r = { id, bus, registry, link, told: [] as string[], binaries: [] as Uint8Array[], leading: [] as boolean[], localOffers: 0 } as Replica;
  r.relay = new SessionRelay({
    bus,
    cluster,
    replicaId: id,
    registry,
    clock,
    logger: quiet,
    intake: {
      stages: {
        onStageMessage: (nodeId, message) => void r.told.push(`${message.type} ${nodeId.slice(0, 4)}`),
        onBinary: (nodeId, data) => {
          r.told.push(`frame ${nodeId.slice(0, 4)}`);
          r.binaries.push(Uint8Array.from(data));
        },
        onNodeLost: (nodeId) => void r.told.push(`lost ${nodeId.slice(0, 4)}`),
      },
      checks: { onMessage: (nodeId, message) => void r.told.push(`${message.type} ${message.check_id} ${nodeId.slice(0, 4)}`) },
      embeddings: {
        onMessage: (nodeId, message) => void r.told.push(`${message.type} ${message.request_id} ${nodeId.slice(0, 4)}`),
        onNodeLost: (nodeId) => void r.told.push(`embeddings lost ${nodeId.slice(0, 4)}`),
      },
    },
    onLocalOffer: () => void r.localOffers++,
  });
  r.leader = new ShardingLeader({ replicaId: id, clock, peers: () => link.livePeers().map((p) => p.replica), setLeading: (leading) => void r.leading.push(leading) });
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

describeWithNats("node sessions on other replicas over NATS", await probeNatsServer(), () => {
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
    a.leader.tick();
    c.leader.tick();
    expect([a.leading, c.leading]).toEqual([[false], [false]]);
    clock.advance(LEADER_SETTLE_MS);
    a.leader.tick();
    c.leader.tick();
    expect([a.leading.at(-1), c.leading.at(-1)]).toEqual([true, false]);
  });

  it("carries the leader's stage messages and frames to a node held by another replica, and the node's answers back", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    expect(a.relay.reachable(NODE)).toBe(true);
    expect(a.relay.reachable("f".repeat(64))).toBe(false);
    expect(a.relay.send("f".repeat(64), { type: "stage.unload", stage_id: 1 })).toBe(false);

    expect(a.relay.send(NODE, { type: "stage.load", stage_id: 7, sha256: "e".repeat(64), start: 0, end: 4 })).toBe(true);
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
    await until(() => a.told.length === 4, "A hears the node lost");
    expect(a.told.slice(2)).toEqual(["lost aaaa", "embeddings lost aaaa"]);
    expect(c.told[1]).toBe("lost aaaa");
  });

  it("brings a check's scores and an embedding back to the replica that asked, by their ids; other answers stay", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    a.relay.send(NODE, { type: "check.score", check_id: "chk-1", model: "tiny", messages: [{ role: "user", content: "hi" }], output_tokens: [1, 2] });
    a.relay.send(NODE, { type: "embed.request", request_id: "emb-1", model: "tiny", input: { texts: ["hi"] } });
    await until(() => session.json.length === 2, "both reach the node on C");
    expect(session.json.map((m) => m.type)).toEqual(["check.score", "embed.request"]);

    c.relay.onCheckMessage(NODE, { type: "check.scores", check_id: "chk-1", prompt_tokens: 3, positions: [], eos: { logprob: -1, rank: 1 } });
    c.relay.onEmbedMessage(NODE, { type: "embed.error", request_id: "emb-1", code: "bad_request", message: "too long" });
    // Answers nobody elsewhere waits for are C's own: an unknown id, or a second answer to the same check.
    c.relay.onCheckMessage(NODE, { type: "check.error", check_id: "chk-1", message: "again" });
    c.relay.onEmbedMessage(NODE, { type: "embed.error", request_id: "emb-other", code: "bad_request", message: "x" });
    await until(() => a.told.length === 2, "A hears both answers");
    expect(a.told).toEqual(["check.scores chk-1 aaaa", "embed.error emb-1 aaaa"]);
    expect(c.told).toEqual(["check.error chk-1 aaaa", "embed.error emb-other aaaa"]);
  });

  it("carries a frame and an answer past the NATS server's max_payload in chunks, each byte as sent", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    // 1 MiB is the server's default max_payload; these are 3.2 MB: a 200-token prompt at a hidden size of 4,096 in F32.
    const values = Float32Array.from({ length: 200 * 4_096 }, (_, i) => Math.sin(i));
    const big = (requestId: string) => encodeActivationFrame({ requestId, stageId: 7, seq: 0, rows: 200, cols: 4_096, positions: Int32Array.from({ length: 200 }, (_, i) => i), dtype: "f32", data: values });
    expect(a.relay.sendBinary(NODE, big("job-big"))).toBe(true);
    await until(() => session.binary.length === 1, "the frame reaches the node on C");
    expect(Buffer.compare(Buffer.from(session.binary[0]!), Buffer.from(big("job-big")))).toBe(0);
    c.relay.onBinary(NODE, big("job-big"));
    await until(() => a.binaries.length === 1, "the node's answer reaches A");
    expect(Buffer.compare(Buffer.from(a.binaries[0]!), Buffer.from(big("job-big")))).toBe(0);
  });

  it("refuses a request larger than the bus carries, ends one whose answer is with an error at the asker, and goes on", async () => {
    // The bus carries messages up to MAX_MESSAGE_BYTES (80 MiB) in chunks; these two carry up to the server's 1 MiB.
    const [a, c] = [await replica("a", { maxMessageBytes: 1024 * 1024 }), await replica("c", { maxMessageBytes: 1024 * 1024 })];
    const session = await stageNodeOn(c, [a]);
    // A request the bus cannot carry does not reach the node: the asker hears it cannot (as for a node out of reach).
    expect(a.relay.send(NODE, { type: "embed.request", request_id: "emb-huge", model: "tiny", input: { texts: ["x".repeat(1_100_000)] } })).toBe(false);
    expect(a.relay.sendBinary(NODE, encodeActivationFrame({ requestId: "job-huge", stageId: 7, seq: 0, rows: 1, cols: 300_000, positions: Int32Array.of(0), dtype: "f32", data: new Float32Array(300_000) }))).toBe(false);
    expect(a.relay.send(NODE, { type: "embed.request", request_id: "emb-big", model: "tiny", input: { texts: ["hi"] } })).toBe(true);
    a.relay.sendBinary(NODE, frame("job-big", 1));
    await until(() => session.json.length === 1 && session.binary.length === 1, "both reach the node on C");

    // Over 1 MiB: a vector answer of 300,000 floats, an F32 answer frame of as many.
    const vectors = Buffer.alloc(4 * 300_000).toString("base64");
    expect(() => c.relay.onEmbedMessage(NODE, { type: "embed.result", request_id: "emb-big", dimensions: 300_000, embeddings: [vectors], prompt_tokens: 1 })).not.toThrow();
    const bigFrame = encodeActivationFrame({ requestId: "job-big", stageId: 7, seq: 0, rows: 1, cols: 300_000, positions: Int32Array.of(0), dtype: "f32", data: new Float32Array(300_000) });
    expect(() => c.relay.onBinary(NODE, bigFrame)).not.toThrow();
    await until(() => a.told.length === 2, "A hears an error for each");
    expect(a.told).toEqual(["embed.error emb-big aaaa", "stage.error aaaa"]);

    c.relay.onBinary(NODE, frame("job-big", 2));
    await until(() => a.told.length === 3, "an answer that fits still crosses");
    expect(a.told[2]).toBe("frame aaaa");
  });

  it("tells a replica waiting for a node's answer when the node drops, and forgets answers never given", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    a.relay.send(NODE, { type: "check.score", check_id: "chk-2", model: "tiny", messages: [{ role: "user", content: "hi" }], output_tokens: [1] });
    await until(() => session.json.length === 1, "the check reaches the node");
    c.relay.onNodeLost(NODE);
    await until(() => a.told.includes("embeddings lost aaaa"), "A hears the node lost");
    // After the loss, a late answer is C's own (nobody waits for it elsewhere any more).
    c.relay.onCheckMessage(NODE, { type: "check.error", check_id: "chk-2", message: "late" });
    expect(c.told.at(-1)).toBe("check.error chk-2 aaaa");

    a.relay.send(NODE, { type: "check.score", check_id: "chk-3", model: "tiny", messages: [{ role: "user", content: "hi" }], output_tokens: [1] });
    await until(() => session.json.length === 2, "a second check reaches the node");
    clock.advance(AWAITED_ANSWER_TTL_MS + 1);
    c.relay.tick();
    c.relay.onCheckMessage(NODE, { type: "check.error", check_id: "chk-3", message: "very late" });
    expect(c.told.at(-1)).toBe("check.error chk-3 aaaa");
  });

  it("answers stage traffic for a node it no longer holds with the node lost, so the leader re-routes at once", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    await stageNodeOn(c, [a]);
    // The node's session closed on C; A has not had C's next beat yet.
    c.registry.detach(NODE, c.registry.get(NODE)!.worker!, "session closed");
    a.relay.sendBinary(NODE, frame("job-2", 1));
    await until(() => a.told.includes("lost aaaa"), "A hears the node lost");
    a.told.length = 0;
    a.relay.send(NODE, { type: "stage.drop", request_id: "job-2" });
    await until(() => a.told.includes("lost aaaa"), "and again for a stage message");
  });

  it("drops malformed stage messages and frames and changes nothing", async () => {
    const [a, c] = [await replica("a"), await replica("c")];
    const session = await stageNodeOn(c, [a]);
    const encode = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
    for (const g of ["not json", { type: "to_node", from: a.id, node: NODE, message: { type: "stage.load" } }, { type: "to_node", from: a.id, node: NODE, message: { type: "job.assign", job_id: "j" } }, { type: "from_node", node: "zz", message: { type: "stage.loaded", stage_id: 1, ms_per_layer: 1 } }, { type: "explode" }]) {
      a.bus.publish(`tessera.v1.${cluster}.replica.${c.id}.sessions`, encode(g));
      c.bus.publish(`tessera.v1.${cluster}.replica.${a.id}.sessions`, encode(g));
    }
    // A sender that is not a replica id would name no subject the answers could go to.
    const bogusSenders = ["r a", "r-a\n"].map((from) => encodeFrameEnvelope("to_node", from, NODE, frame("job-1", 1)));
    for (const bytes of [Uint8Array.of(), Uint8Array.of(9, 9, 9), Uint8Array.of(1, 0, 1, 2), ...bogusSenders]) {
      a.bus.publish(`tessera.v1.${cluster}.replica.${c.id}.frames`, bytes);
      c.bus.publish(`tessera.v1.${cluster}.replica.${a.id}.frames`, bytes);
    }
    await a.bus.flush();
    await c.bus.flush();
    // A good message after the garbage still lands.
    a.relay.send(NODE, { type: "stage.unload", stage_id: 3 });
    await until(() => session.json.length === 1, "the good message lands");
    expect(session.json).toEqual([{ type: "stage.unload", stage_id: 3 }]);
    expect(session.binary).toEqual([]);
    expect([a.told, c.told]).toEqual([[], []]);
  });
});
