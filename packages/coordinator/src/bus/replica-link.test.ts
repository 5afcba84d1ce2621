import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CoordinatorMessage, ErrorCode, ShardOffer, StreamPart } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeRegistry } from "../registry.js";
import { SessionWorker } from "../sessions/session-worker.js";
import type { JobSink } from "../workers/job-sink.js";
import type { Worker } from "../workers/worker.js";
import type { StandingJudgment } from "../trust/node-standing.js";
import type { NodeSession } from "../workers/node-session.js";
import { type Bus, subjectsOf } from "./bus.js";
import { ReplicaBeat, encodeBusMessage } from "./bus-messages.js";
import { connectNatsBus, type NatsBusOptions } from "./nats-bus.js";
import { NATS_URL, describeWithNats, probeNatsServer, randomReplicaId } from "./nats.test-support.js";
import { JUDGMENTS_FLUSH_MS, REPLICA_SILENT_AFTER_MS, ReplicaLink, type ReplicaLinkDeps, WHOLE_BEAT_EVERY, beatParts } from "./replica-link.js";
import { RemoteWorker } from "./remote-worker.js";

/**
 * Two replicas' links over the real NATS server, each with its own registry: replica A holds a node's session,
 * replica B holds the jobs. What B's job manager would be told is recorded by a sink; the node is a session that
 * records what it is sent.
 */
const NODE = "a".repeat(64);
const OPERATOR = "b".repeat(64);
const quiet = createLogger("silent");

class RecordingSink implements JobSink {
  readonly calls: string[] = [];
  /** Times the link asked for queued jobs to be handed out (a node appeared). */
  dispatches = 0;
  dispatch() { this.dispatches++; }
  accepted(w: string, j: string) { this.calls.push(`accepted ${w.slice(0, 4)} ${j}`); }
  rejected(w: string, j: string, reason: string) { this.calls.push(`rejected ${w.slice(0, 4)} ${j} ${reason}`); }
  part(w: string, j: string, part: StreamPart) { this.calls.push(`part ${w.slice(0, 4)} ${j} ${part.type}${part.type === "text-delta" ? ` ${part.text}` : ""}`); }
  failed(w: string, j: string, code: ErrorCode) { this.calls.push(`failed ${w.slice(0, 4)} ${j} ${code}`); }
  lost(w: string, reason: string) { this.calls.push(`lost ${w.slice(0, 4)} ${reason}`); }
}

class RecordingSession implements NodeSession {
  readonly sent: CoordinatorMessage[] = [];
  readonly closes: string[] = [];
  constructor(
    readonly nodeId: string,
    readonly openedAt?: number,
  ) {}
  send(message: CoordinatorMessage) { this.sent.push(message); }
  sendBinary() {}
  rttMs() { return 3; }
  close(_code: number, reason: string) { this.closes.push(reason); }
}

interface Replica {
  id: string;
  bus: Bus;
  registry: NodeRegistry;
  sink: RecordingSink;
  link: ReplicaLink;
  offline: string[];
  /** Nodes that moved here from another replica, as `onHeldHere` reported them. */
  heldHere: string[];
  /** Quarantines and releases other replicas announced, as applied here. */
  quarantines: string[];
  /** Span offers of other replicas' nodes, as the link passed them on (each a change). */
  peerOffers: Array<{ node: string; offers: ShardOffer[] }>;
}

let clock: ManualClock;
let cluster: string;
let replicas: Replica[];

async function replica(name: string, { busOptions, ...extra }: Partial<ReplicaLinkDeps> & { busOptions?: NatsBusOptions } = {}): Promise<Replica> {
  const id = randomReplicaId(name);
  const bus = await connectNatsBus(NATS_URL, id, quiet, busOptions);
  const offline: string[] = [];
  const registry = new NodeRegistry(clock, 90_000, { onOffline: (nodeId, reason) => offline.push(`${nodeId.slice(0, 4)} ${reason}`), onOnline: () => {} });
  const sink = new RecordingSink();
  const heldHere: string[] = [];
  const quarantines: string[] = [];
  const standing = {
    applyQuarantine: (nodeId: string, quarantined: boolean) => void quarantines.push(`${nodeId.slice(0, 4)} ${quarantined}`),
    applyJudgment: (j: StandingJudgment) => void quarantines.push(`${j.nodeId.slice(0, 4)} ${j.kind === "outcome" ? j.outcome : `check ${j.passed}`}`),
  };
  const peerOffers: Replica["peerOffers"] = [];
  const link = new ReplicaLink({
    bus,
    replicaId: id,
    cluster,
    registry,
    jobs: sink,
    clock,
    logger: quiet,
    standing,
    onHeldHere: (nodeId) => heldHere.push(nodeId.slice(0, 4)),
    onPeerOffers: (node, offers) => void peerOffers.push({ node: node.slice(0, 4), offers }),
    ...extra,
  });
  await link.start();
  const r = { id, bus, registry, sink, link, offline, heldHere, quarantines, peerOffers };
  replicas.push(r);
  return r;
}

/** Waits (real time: the messages cross a real server) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A's node, with its session on A (opened at `openedAt` on the node's clock): registered and attached as the session hub does it. */
function nodeOn(a: Replica, openedAt?: number): RecordingSession {
  const session = new RecordingSession(NODE, openedAt);
  a.registry.register({ type: "register", public_key: NODE, version: "1.0.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models: [{ id: "tiny", backend: "embedded" }], max_concurrency: 2 }, OPERATOR);
  a.registry.attach(NODE, new SessionWorker(session), session);
  return session;
}

/** A beat's summary of node `id` (bus-messages.ts NodeSummary), as a replica of nodes like NODE sends it. */
const summaryOf = (id: string) => ({ id, operator: OPERATOR, version: "1.0.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models: [{ id: "tiny", backend: "embedded" as const }], max_concurrency: 2, draining: false, active_jobs: 0 });

/** Registers and attaches nodes `ids` on replica `r`, each with a session there. */
function nodesOn(r: Replica, ids: string[]): void {
  for (const id of ids) {
    r.registry.register({ type: "register", public_key: id, version: "1.0.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models: [{ id: "tiny", backend: "embedded" }], max_concurrency: 2 }, OPERATOR);
    const session = new RecordingSession(id);
    r.registry.attach(id, new SessionWorker(session), session);
  }
}

/**
 * The beats replica `r` publishes from now on, decoded; `drop` says which of them (counted from 0) never reach the
 * bus, as a message lost on the way.
 */
function beatsOf(r: Replica, drop: (index: number) => boolean = () => false): ReplicaBeat[] {
  const beats: ReplicaBeat[] = [];
  const publish = r.bus.publish;
  r.bus.publish = (subject, data) => {
    if (!subject.endsWith(".beats")) return publish(subject, data);
    beats.push(ReplicaBeat.parse(JSON.parse(new TextDecoder().decode(data))));
    return drop(beats.length - 1) ? "sent" : publish(subject, data);
  };
  return beats;
}

const assignment = (jobId: string) => ({ job_id: jobId, model: "tiny", messages: [{ role: "user" as const, content: "hi" }], sampling: { max_tokens: 8, temperature: 0, top_p: 1 } });

describeWithNats("replicas over NATS", await probeNatsServer(), () => {
  beforeEach(() => {
    clock = new ManualClock();
    cluster = randomReplicaId("test");
    replicas = [];
  });
  afterEach(async () => {
    for (const r of replicas) {
      await r.link.stop();
      await r.bus.close();
    }
  });

  it("shows every replica the nodes another holds, and runs a job on one through its replica, reports in order", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const session = nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node online");
    const seen = b.registry.get(NODE)!;
    expect(seen).toMatchObject({ operatorId: OPERATOR, maxConcurrency: 2, models: [{ id: "tiny" }], session: undefined });
    expect(seen.worker).toBeInstanceOf(RemoteWorker);
    expect((seen.worker as RemoteWorker).replica).toBe(a.id);
    expect(b.sink.dispatches).toBe(1);
    expect(b.link.isRemote(NODE)).toBe(true);
    expect(a.link.isRemote(NODE)).toBe(false);

    seen.worker!.assign(assignment("job-1"));
    await until(() => session.sent.length === 1, "the assignment reaches the node's session on A");
    expect(session.sent[0]).toMatchObject({ type: "job.assign", job_id: "job-1", model: "tiny" });

    // A's session hub reports through the link's sink: B's job manager gets each call, in order; A's gets none.
    a.link.sessionSink.accepted(NODE, "job-1");
    a.link.sessionSink.part(NODE, "job-1", { type: "text-delta", text: "Hel", tokens: [1] });
    a.link.sessionSink.part(NODE, "job-1", { type: "text-delta", text: "lo", tokens: [2] });
    a.link.sessionSink.part(NODE, "job-1", { type: "finish", reason: "stop" });
    await until(() => b.sink.calls.length === 4, "four reports on B");
    expect(b.sink.calls).toEqual(["accepted aaaa job-1", "part aaaa job-1 text-delta Hel", "part aaaa job-1 text-delta lo", "part aaaa job-1 finish"]);
    expect(a.sink.calls).toEqual([]);

    // The job ended: a late part is A's own business again (its job manager ignores jobs it does not hold).
    a.link.sessionSink.part(NODE, "job-1", { type: "text-delta", text: "late", tokens: [3] });
    expect(a.sink.calls).toEqual(["part aaaa job-1 text-delta late"]);
  });

  it("cancels through the node's replica, refuses a job for a node it does not hold, and says when the node is lost", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const session = nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");
    const remote = b.registry.get(NODE)!.worker!;

    remote.assign(assignment("job-2"));
    await until(() => session.sent.length === 1, "assigned");
    remote.cancel("job-2", "client went away");
    await until(() => session.sent.length === 2, "cancelled");
    expect(session.sent[1]).toEqual({ type: "job.cancel", job_id: "job-2", reason: "client went away" });

    // A job for a node A does not hold (it just left) comes back rejected, so B moves it on.
    const stray = new RemoteWorker("c".repeat(64), a.id, (to, command) => b.bus.publish(`tessera.v1.${cluster}.replica.${to}.commands`, new TextEncoder().encode(JSON.stringify(command))), b.id, b.sink, () => {});
    stray.assign(assignment("job-3"));
    await until(() => b.sink.calls.length === 1, "rejected");
    expect(b.sink.calls[0]).toBe(`rejected cccc job-3 node is not on replica ${a.id}`);

    remote.assign(assignment("job-4"));
    await until(() => session.sent.length === 3, "assigned again");
    a.link.sessionSink.lost(NODE, "session closed");
    await until(() => b.sink.calls.length === 2, "lost reaches B");
    expect(b.sink.calls[1]).toBe("lost aaaa session closed");
    expect(a.sink.calls).toEqual(["lost aaaa session closed"]);
  });

  it("carries an assignment past the NATS server's max_payload, and takes one larger than the bus carries as the node rejecting it", async () => {
    const [a, b] = [await replica("a"), await replica("b", { busOptions: { maxMessageBytes: 4 * 2 ** 20 } })];
    const session = nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");
    const remote = b.registry.get(NODE)!.worker!;

    // A client's body may reach 8 MiB; the server takes 1 MiB in one message unless configured otherwise.
    const prompt = (bytes: number) => Array.from({ length: bytes }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
    const big = { ...assignment("job-big"), messages: [{ role: "user" as const, content: prompt(2 * 1024 * 1024) }] };
    remote.assign(big);
    await until(() => session.sent.length === 1, "the 2 MiB assignment reaches the node, in chunks");
    expect(session.sent[0]).toMatchObject({ type: "job.assign", job_id: "job-big", messages: big.messages });

    // B's bus carries 4 MiB at most here (80 MiB by default).
    expect(() => remote.assign({ ...assignment("job-huge"), messages: [{ role: "user" as const, content: "x".repeat(5 * 1024 * 1024) }] })).not.toThrow();
    await until(() => b.sink.calls.length === 1, "the job comes back rejected");
    expect(b.sink.calls).toEqual(["rejected aaaa job-huge the job's assignment is larger than the bus carries"]);

    remote.assign(assignment("job-small"));
    await until(() => session.sent.length === 2, "a job that fits reaches the node");
    expect(session.sent[1]).toMatchObject({ type: "job.assign", job_id: "job-small" });
  });

  it("sends a turn's reports one by one when together they are larger than the bus carries, and fails a job whose one report is", async () => {
    // The bus carries 80 MiB in chunks by default; A's carries the server's 1 MiB here.
    const [a, b] = [await replica("a", { busOptions: { maxMessageBytes: 1024 * 1024 } }), await replica("b")];
    const session = nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");
    b.registry.get(NODE)!.worker!.assign(assignment("job-long"));
    await until(() => session.sent.length === 1, "assigned");

    // Three parts of 400 KB in one turn: one message would be 1.2 MB, over the server's default 1 MiB.
    const chunk = "y".repeat(400_000);
    for (let i = 0; i < 3; i++) a.link.sessionSink.part(NODE, "job-long", { type: "text-delta", text: chunk, tokens: [i] });
    await until(() => b.sink.calls.length === 3, "each part reaches B");
    expect(b.sink.calls).toEqual([0, 1, 2].map(() => `part aaaa job-long text-delta ${chunk}`));

    a.link.sessionSink.part(NODE, "job-long", { type: "text-delta", text: "z".repeat(1_100_000), tokens: [3] });
    await until(() => b.sink.calls.length === 4, "the job fails at B");
    expect(b.sink.calls[3]).toBe("failed aaaa job-long internal_error");
  });

  it("takes a node offline when its replica stops listing it, and all of a silent replica's nodes", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const session = nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");

    a.registry.detach(NODE, a.registry.get(NODE)!.worker!, "session closed");
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === false, "B takes it offline");
    expect(b.offline).toEqual([`aaaa it left replica ${a.id}`]);

    a.registry.attach(NODE, new SessionWorker(session), session);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "back");
    await a.link.stop();
    clock.advance(REPLICA_SILENT_AFTER_MS - 1);
    b.link.sweepPeers();
    expect(b.registry.get(NODE)!.online).toBe(true);
    clock.advance(1);
    b.link.sweepPeers();
    expect(b.registry.get(NODE)!.online).toBe(false);
    expect(b.offline.at(-1)).toBe(`aaaa its replica ${a.id} went silent`);
    expect(b.link.livePeers()).toEqual([]);
  });

  it("beats in parts when its nodes are over one bus message, and the others show them all and drop only the one that left", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const beatSizes: number[] = [];
    const publish = a.bus.publish;
    a.bus.publish = (subject, data) => {
      if (subject.endsWith(".beats")) beatSizes.push(data.byteLength);
      return publish(subject, data);
    };
    const ids = Array.from({ length: 5_000 }, (_, i) => `c${i.toString(16).padStart(63, "0")}`);
    for (const id of ids) {
      a.registry.register({ type: "register", public_key: id, version: "1.0.0", hardware: { cpu_cores: 4, ram_mb: 8192, gpus: [] }, models: [{ id: "tiny", backend: "embedded" }], max_concurrency: 2 }, OPERATOR);
      const session = new RecordingSession(id);
      a.registry.attach(id, new SessionWorker(session), session);
    }
    a.link.beat();
    await until(() => ids.every((id) => b.registry.get(id)?.online === true), "B shows all of A's nodes");
    // Over NATS's default 1 MiB as one message: parts, each a beat of its own, each under the limit.
    expect(beatSizes.length).toBeGreaterThan(1);
    expect(beatSizes.reduce((sum, n) => sum + n, 0)).toBeGreaterThan(a.bus.maxPayload());
    expect(Math.max(...beatSizes)).toBeLessThanOrEqual(a.bus.maxPayload());

    const gone = ids[4_321]!;
    a.registry.detach(gone, a.registry.get(gone)!.worker!, "session closed");
    a.link.beat();
    await until(() => b.registry.get(gone)?.online === false, "B takes the node that left offline");
    expect(b.offline).toEqual([`c000 it left replica ${a.id}`]);
    expect(ids.filter((id) => b.registry.get(id)?.online === true)).toHaveLength(4_999);
    expect(b.link.livePeers()).toMatchObject([{ replica: a.id, nodes: 4_999 }]);
  });

  it("takes a node offline only once every part of a beat that leaves it out arrived, and drops a beat heard in part", async () => {
    const b = await replica("b");
    const x = randomReplicaId("x");
    const sender = await connectNatsBus(NATS_URL, x, quiet);
    const send = (sentAt: number, nodes: string[], parts?: { part: number; parts: number }) =>
      sender.publish(subjectsOf(cluster).beats, encodeBusMessage({ type: "beat", replica: x, sent_at: sentAt, nodes: nodes.map(summaryOf), ...parts }));
    const [n1, n2, n3, n4] = ["1", "2", "3", "4"].map((c) => c.repeat(64)) as [string, string, string, string];
    const online = (id: string) => b.registry.get(id)?.online === true;
    try {
      send(1, [n1], { part: 0, parts: 2 });
      send(1, [n2], { part: 1, parts: 2 });
      await until(() => online(n1) && online(n2), "both parts' nodes shown");

      // Beat 2 leaves n2 out; its part 0 (which adds n3) is not the whole beat, so n2 stays.
      send(2, [n1, n3], { part: 0, parts: 2 });
      await until(() => online(n3), "part 0 of beat 2 heard");
      expect(online(n2)).toBe(true);
      send(2, [], { part: 1, parts: 2 });
      await until(() => !online(n2), "n2 offline once beat 2 is whole");

      // Beat 3 is heard in part only (its part 1 never comes): it drops nothing; beat 4, whole, does.
      send(3, [n1], { part: 0, parts: 2 });
      send(4, [n1, n4]);
      await until(() => online(n4), "beat 4 heard");
      expect(online(n3)).toBe(false);
      expect(b.offline).toEqual([`2222 it left replica ${x}`, `3333 it left replica ${x}`]);
    } finally {
      await sender.close();
    }
  });

  it("moves a node's jobs on when the node moves to another replica, and never shadows a node with a session here", async () => {
    const [a, b, c] = [await replica("a"), await replica("b"), await replica("c")];
    nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true && c.registry.get(NODE)?.online === true, "B and C see A's node");
    // The node reconnects to C; A has not noticed yet and still lists it.
    a.registry.detach(NODE, a.registry.get(NODE)!.worker!, "session closed");
    nodeOn(c);
    c.link.beat();
    await until(() => (b.registry.get(NODE)!.worker as RemoteWorker).replica === c.id, "B routes through C");
    expect(b.sink.calls).toEqual([`lost aaaa its route through replica ${a.id} closed: replaced by a newer session`]);
    a.registry.attach(NODE, new SessionWorker(new RecordingSession(NODE)), new RecordingSession(NODE));
    a.link.beat();
    await new Promise((r) => setTimeout(r, 100));
    expect(c.registry.get(NODE)!.worker).toBeInstanceOf(SessionWorker);
  });

  it("keeps the route to a node's later session while the replica with its earlier one still lists it, and that replica closes the earlier one", async () => {
    const [a, b, c] = [await replica("a"), await replica("b"), await replica("c")];
    const earlier = nodeOn(a, 1_000);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");
    // Two of B's jobs on the node through A: one B's job manager holds there, one whose report crosses B's cancel.
    const throughA = b.registry.get(NODE)!.worker!;
    throughA.assign(assignment("job-held"));
    b.registry.get(NODE)!.activeJobs.add("job-held");
    throughA.assign(assignment("job-crossing"));
    await until(() => earlier.sent.length === 2, "both reach the node through A");

    // The node opens a session on C a second later; A has not noticed it left.
    nodeOn(c, 1_001);
    c.link.beat();
    await until(() => (b.registry.get(NODE)!.worker as RemoteWorker).replica === c.id, "B routes through C");
    expect(b.sink.calls).toEqual([`lost aaaa its route through replica ${a.id} closed: replaced by a newer session`]);
    // A is told to stop the job B sent that way (the failover's cancels go by C, which never had it).
    await until(() => earlier.sent.length === 3, "the cancel reaches A's session");
    expect(earlier.sent[2]).toMatchObject({ type: "job.cancel", job_id: "job-held" });
    // A heard C list the later session: it closes its own.
    await until(() => earlier.closes.length === 1, "A closes the earlier session");
    expect(earlier.closes[0]).toBe(`the node opened a later session on replica ${c.id}`);

    // A still lists the node (its session's close is not done yet) and B keeps its route: no move, no failover.
    for (let i = 0; i < 3; i++) {
      a.link.beat();
      c.link.beat();
    }
    // A's session closes with the job B's cancel crossed: A's late lost must not fail over B's jobs on the node through C.
    a.link.sessionSink.lost(NODE, "session closed");
    await Promise.all([a.bus.flush(), c.bus.flush()]);
    await new Promise((r) => setTimeout(r, 100));
    expect((b.registry.get(NODE)!.worker as RemoteWorker).replica).toBe(c.id);
    expect(b.sink.calls).toHaveLength(1);
    expect(c.registry.get(NODE)!.worker).toBeInstanceOf(SessionWorker);
  });

  it("stops the jobs a silent replica ran on this replica's nodes: their client was on it", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const session = nodeOn(a);
    a.link.beat();
    b.link.beat();
    await until(() => b.registry.get(NODE)?.online === true && a.link.livePeers().length === 1, "A and B hear each other");
    b.registry.get(NODE)!.worker!.assign(assignment("job-orphan"));
    await until(() => session.sent.length === 1, "B's job reaches the node through A");
    await b.link.stop();
    clock.advance(REPLICA_SILENT_AFTER_MS);
    a.link.sweepPeers();
    expect(session.sent[1]).toEqual({ type: "job.cancel", job_id: "job-orphan", reason: `its replica ${b.id} went silent` });
    // Its reports no longer go anywhere: the node's next part is A's own business.
    a.link.sessionSink.part(NODE, "job-orphan", { type: "finish", reason: "stop" });
    expect(a.sink.calls).toEqual(["part aaaa job-orphan finish"]);
  });

  it("reports this replica's jobs on a node lost when the node's session moves here from another replica", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    nodeOn(a);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");
    // A dies with the node's session (no lost comes over the bus); the node reconnects to B itself.
    await a.link.stop();
    const session = new RecordingSession(NODE);
    b.registry.attach(NODE, new SessionWorker(session), session);
    expect(b.sink.calls).toEqual([`lost aaaa its route through replica ${a.id} closed: replaced by a newer session`]);
    expect(b.registry.get(NODE)!.online).toBe(true);
    expect(b.heldHere).toEqual(["aaaa"]);
    // A's last beat still lists it: a node with a session here is never shown through another replica.
    a.link.beat();
    await new Promise((r) => setTimeout(r, 100));
    expect(b.registry.get(NODE)!.worker).toBeInstanceOf(SessionWorker);
    expect(b.link.isRemote(NODE)).toBe(false);
  });

  it("shows a pipeline this replica runs (no session) to the others, runs their jobs on it, and relays its failure", async () => {
    const PIPELINE = "d".repeat(64);
    const split = { model: "big", layers: 8, stages: 2, nodes: 2, ready: true };
    const pipelines: string[] = [];
    const a = await replica("a", { pipelineSummaries: () => new Map([[PIPELINE, split]]) });
    const b = await replica("b", { onPeerPipeline: (id, summary) => void pipelines.push(`${id.slice(0, 4)} ${JSON.stringify(summary)}`) });
    const assigned: string[] = [];
    const pipeline: Worker = { id: PIPELINE, assign: (job) => void assigned.push(job.job_id), cancel: () => undefined, rtt: () => 0, close: () => undefined };
    a.registry.register({ type: "register", public_key: PIPELINE, version: "pipeline", hardware: { cpu_cores: 1, ram_mb: 0, gpus: [] }, models: [{ id: "big", backend: "pipeline" }], max_concurrency: 8 }, PIPELINE);
    a.registry.attach(PIPELINE, pipeline);
    a.link.beat();
    await until(() => b.registry.get(PIPELINE)?.online === true, "B sees A's pipeline");
    expect(b.registry.get(PIPELINE)).toMatchObject({ models: [{ id: "big", backend: "pipeline" }] });
    // Its split travels with it, for B's models list.
    expect(pipelines).toEqual([`dddd ${JSON.stringify(split)}`]);
    b.registry.get(PIPELINE)!.worker!.assign(assignment("job-p"));
    await until(() => assigned.length === 1, "the job reaches the pipeline on A");
    // The pipeline reports through the link's sink, as the coordinator wires it: B's job manager is told.
    a.link.sessionSink.accepted(PIPELINE, "job-p");
    a.link.sessionSink.failed(PIPELINE, "job-p", "no_capacity", "layers 4-7 are held by no online stage");
    await until(() => b.sink.calls.length === 2, "both reports on B");
    expect(b.sink.calls).toEqual(["accepted dddd job-p", "failed dddd job-p no_capacity"]);
    // A's own job manager is told of its own pipeline's failures only.
    a.link.sessionSink.failed(PIPELINE, "job-local", "no_capacity", "x");
    expect(a.sink.calls).toEqual(["failed dddd job-local no_capacity"]);
    // The pipeline goes: B forgets its split.
    a.registry.detach(PIPELINE, pipeline, "no node offers its layers");
    a.link.beat();
    await until(() => pipelines.length === 2, "B hears the pipeline go");
    expect(pipelines[1]).toBe("dddd undefined");
  });

  it("counts the jobs other replicas run on a remote node as its load, and takes its round trip from its replica's beat", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    nodeOn(a);
    a.registry.get(NODE)!.activeJobs.add("a-local-job");
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B sees A's node");
    expect(b.registry.get(NODE)!.jobsElsewhere).toBe(1);
    expect(b.registry.get(NODE)!.worker!.rtt()).toBe(3);
    // B's own job on it, relayed through A: A counts it, B does not count it twice.
    b.registry.get(NODE)!.worker!.assign(assignment("job-b"));
    b.registry.get(NODE)!.activeJobs.add("job-b");
    await new Promise((r) => setTimeout(r, 50));
    a.link.beat();
    await b.bus.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(b.registry.get(NODE)!.jobsElsewhere).toBe(1);
    // A's own job ends: only B's is left on the node.
    a.registry.get(NODE)!.activeJobs.delete("a-local-job");
    a.link.beat();
    await until(() => b.registry.get(NODE)!.jobsElsewhere === 0, "B sees A's job end");
  });

  it("measures the bus's round trip to each other replica from echoed beats and adds it to a remote node's round trip", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    nodeOn(a);
    const peerRtt = (r: Replica) => r.link.livePeers()[0]?.rttMs;
    // A beats (a millisecond after the beat it sent on starting: two beats never share a sent_at, which names a beat);
    // B holds it 2 ms and echoes it in its own beat, which reaches A 3 ms later: a round trip of 3 ms.
    clock.advance(1);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "B hears A");
    expect(b.registry.get(NODE)!.worker!.rtt()).toBe(3); // the node's session only: B has not measured the bus yet
    clock.advance(2);
    b.link.beat();
    clock.advance(3);
    await until(() => peerRtt(a) !== undefined, "A measures its round trip to B");
    expect(peerRtt(a)).toBe(3);
    // A holds B's beat 1 ms and echoes it; B hears the echo 2 ms later: 3 + 1 + 2 since B beat, less 1 held.
    clock.advance(1);
    a.link.beat();
    clock.advance(2);
    await until(() => peerRtt(b) !== undefined, "B measures its round trip to A");
    expect(peerRtt(b)).toBe(5);
    expect(b.registry.get(NODE)!.worker!.rtt()).toBe(3 + 5);
    // Later samples are smoothed in: B echoes A's last beat (sent 2 ms ago) at once, and A hears it 10 ms later, a
    // sample of 12. An echo that makes no sense (a beat from the future) is ignored.
    b.link.beat();
    clock.advance(10);
    await until(() => peerRtt(a) !== 3, "A takes a second sample");
    expect(peerRtt(a)).toBeCloseTo(3 + 0.2 * (12 - 3), 10);
    const liar = JSON.stringify({ type: "beat", replica: "liar", sent_at: clock.now(), nodes: [], echoes: [{ replica: b.id, sent_at: clock.now() + 60_000, held_ms: 0 }] });
    a.bus.publish(`tessera.v1.${cluster}.beats`, new TextEncoder().encode(liar));
    await until(() => b.link.livePeers().length === 2, "B hears the liar");
    expect(b.link.livePeers().find((p) => p.replica === "liar")!.rttMs).toBeUndefined();
    expect(peerRtt(b)).toBe(5);
  });

  it("carries a node's span offers in its replica's beat, and tells the others only when they change", async () => {
    let offers: ShardOffer[] = [{ model: "big", sha256: "e".repeat(64), layer_count: 8, bytes_per_layer: 1000, free_memory_bytes: 1e9 }];
    const a = await replica("a", { stageOffers: (nodeId) => (nodeId === NODE ? offers : []) });
    const b = await replica("b");
    nodeOn(a);
    a.link.beat();
    await until(() => b.peerOffers.length === 1, "B hears the offer");
    expect(b.peerOffers[0]).toEqual({ node: "aaaa", offers });
    a.link.beat();
    a.link.beat();
    await b.bus.flush();
    await new Promise((r) => setTimeout(r, 100));
    expect(b.peerOffers).toHaveLength(1);
    offers = [];
    a.link.beat();
    await until(() => b.peerOffers.length === 2, "B hears the withdrawal");
    expect(b.peerOffers[1]).toEqual({ node: "aaaa", offers: [] });
  });

  it("applies another replica's quarantine and release at every other replica, never its own", async () => {
    const [a, b, c] = [await replica("a"), await replica("b"), await replica("c")];
    a.link.announceQuarantine(NODE, true);
    a.link.announceQuarantine(NODE, false);
    await until(() => b.quarantines.length === 2 && c.quarantines.length === 2, "B and C follow");
    expect(b.quarantines).toEqual(["aaaa true", "aaaa false"]);
    expect(c.quarantines).toEqual(["aaaa true", "aaaa false"]);
    expect(a.quarantines).toEqual([]);
  });

  it("applies another replica's judgments of nodes at every other replica, in order, those of a tenth of a second in one message", async () => {
    const [a, b, c] = [await replica("a"), await replica("b"), await replica("c")];
    let messages = 0;
    b.bus.subscribe(`tessera.v1.${cluster}.standing`, () => messages++);
    a.link.announceJudgment({ nodeId: NODE, kind: "outcome", outcome: "completed" });
    a.link.announceJudgment({ nodeId: NODE, kind: "check", passed: false });
    // Later, in another turn, but within JUDGMENTS_FLUSH_MS of the first.
    await new Promise((resolve) => setTimeout(resolve, 10));
    a.link.announceJudgment({ nodeId: NODE, kind: "outcome", outcome: "stalled" });
    await until(() => b.quarantines.length === 3 && c.quarantines.length === 3, "B and C apply all three");
    expect(b.quarantines).toEqual(["aaaa completed", "aaaa check false", "aaaa stalled"]);
    expect(c.quarantines).toEqual(b.quarantines);
    expect(a.quarantines).toEqual([]);
    expect(messages).toBe(1);
  });

  it("tells a quarantine at once, after the judgments gathered before it, and sends what is gathered when it stops", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    a.link.announceJudgment({ nodeId: NODE, kind: "check", passed: false });
    a.link.announceQuarantine(NODE, true);
    a.link.announceJudgment({ nodeId: NODE, kind: "outcome", outcome: "lost" });
    // Stopped at once, well within JUDGMENTS_FLUSH_MS: the last judgment goes out with the stop, not with a timer.
    await a.link.stop();
    await until(() => b.quarantines.length === 3, "B applies all three");
    expect(b.quarantines).toEqual(["aaaa check false", "aaaa true", "aaaa lost"]);
    // After the stop nothing is gathered, so no timer publishes on a bus the coordinator closes next.
    await a.bus.close();
    a.link.announceJudgment({ nodeId: NODE, kind: "outcome", outcome: "completed" });
    await new Promise((resolve) => setTimeout(resolve, JUDGMENTS_FLUSH_MS * 2));
    expect(b.quarantines).toHaveLength(3);
  });

  it("beats deltas after a whole beat: what changed of a node, its load alone in a compact row, the nodes that left; the others follow and keep the rest online", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    await until(() => a.link.livePeers().length === 1, "A hears B start: its next beat is whole");
    const beats = beatsOf(a);
    const [n1, n2, n3] = ["1", "2", "3"].map((c) => c.repeat(64)) as [string, string, string];
    nodesOn(a, [n1, n2, n3]);
    clock.advance(1_000);
    a.link.beat();
    await until(() => [n1, n2, n3].every((id) => b.registry.get(id)?.online === true), "B shows A's three nodes");
    expect(beats[0]).toMatchObject({ nodes: [{ id: n1 }, { id: n2 }, { id: n3 }] });
    expect(beats[0]!.base).toBeUndefined();

    // Nothing changed: a delta naming nothing, which still keeps them online at B past the registry's 90 s.
    for (let i = 0; i < 4; i++) {
      clock.advance(30_000);
      a.link.beat();
      await a.bus.flush();
      await until(() => b.link.livePeers()[0]?.lastBeatAt === clock.now(), "B hears the beat");
      b.registry.sweep();
    }
    expect(beats[1]).toMatchObject({ base: beats[0]!.sent_at, nodes: [], loads: [], left: [] });
    expect([n1, n2, n3].every((id) => b.registry.get(id)?.online === true)).toBe(true);

    // n1's load, n2 draining, n3 gone: a load row, a summary, a departure.
    a.registry.get(n1)!.activeJobs.add("job-x");
    a.registry.setDraining(n2);
    a.registry.detach(n3, a.registry.get(n3)!.worker!, "session closed");
    a.link.beat();
    await until(() => b.registry.get(n3)?.online === false, "B takes n3 offline");
    expect(beats.at(-1)).toMatchObject({ nodes: [{ id: n2, draining: true }], loads: [[n1, 1, 3]], left: [n3] });
    expect(b.registry.get(n1)!.jobsElsewhere).toBe(1);
    expect(b.registry.get(n2)!.draining).toBe(true);
    expect(b.offline).toEqual([`3333 it left replica ${a.id}`]);
    expect(b.link.livePeers()).toMatchObject([{ replica: a.id, nodes: 2 }]);
  });

  it("asks for a whole beat when a delta is missed, and the whole beat shows what the missed one said", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const beats = beatsOf(a, (i) => i === 2);
    const [n1, n2, n3] = ["1", "2", "3"].map((c) => c.repeat(64)) as [string, string, string];
    const heard = async (from: Replica, by: Replica) => {
      await from.bus.flush();
      await until(() => by.link.livePeers().find((p) => p.replica === from.id)?.lastBeatAt === clock.now(), "the beat is heard");
    };
    const beat = async (from: Replica, by: Replica) => {
      clock.advance(1_000);
      from.link.beat();
      await heard(from, by);
    };
    nodesOn(a, [n1, n2]);
    // B started after A's first beat: A's next one is whole for it (A heard B start). Then a delta.
    await until(() => a.link.livePeers().length === 1, "A hears B start");
    await beat(a, b);
    await beat(b, a);
    await beat(a, b);
    await beat(b, a);
    expect(beats.map((x) => x.base === undefined)).toEqual([true, false]);
    expect(b.link.livePeers()[0]!.nodes).toBe(2);

    // Beat 2 (n2 left, n3 came) is lost on the way. Beat 3, a delta on it, is applied for what it says (n1's load).
    a.registry.detach(n2, a.registry.get(n2)!.worker!, "session closed");
    nodesOn(a, [n3]);
    clock.advance(1_000);
    a.link.beat();
    a.registry.get(n1)!.activeJobs.add("job-y");
    await beat(a, b);
    expect(beats[2]).toMatchObject({ nodes: [{ id: n3 }], left: [n2] });
    expect(beats[3]).toMatchObject({ base: beats[2]!.sent_at, loads: [[n1, 1, 3]] });
    expect(b.registry.get(n1)!.jobsElsewhere).toBe(1);
    expect(b.registry.get(n3)).toBeUndefined();
    expect(b.registry.get(n2)!.online).toBe(true);

    // B's echo asks for a whole beat; A's next one is, and B shows what A holds.
    await beat(b, a);
    await beat(a, b);
    expect(beats[4]!.base).toBeUndefined();
    expect(b.registry.get(n3)!.online).toBe(true);
    expect(b.registry.get(n2)!.online).toBe(false);
    // In sequence again: B asks for nothing, and A's next beats are deltas.
    await beat(b, a);
    await beat(a, b);
    expect(beats[5]!.base).toBe(beats[4]!.sent_at);
  });

  it("beats whole for a replica that appears, and every WHOLE_BEAT_EVERY beats", async () => {
    const a = await replica("a");
    const beats = beatsOf(a);
    nodesOn(a, [NODE]);
    for (let i = 0; i < 3; i++) a.link.beat();
    // The first whole beat went on starting.
    expect(beats.map((beat) => beat.base === undefined)).toEqual([false, false, false]);

    const c = await replica("c");
    c.link.beat();
    await c.bus.flush();
    await until(() => a.link.livePeers().length === 1, "A hears C");
    a.link.beat();
    expect(beats.at(-1)!.base).toBeUndefined();
    await until(() => c.registry.get(NODE)?.online === true, "C shows A's node from that one beat");

    const from = beats.length;
    for (let i = 0; i < WHOLE_BEAT_EVERY; i++) a.link.beat();

    expect(beats.slice(from).map((beat) => beat.base === undefined)).toEqual(Array.from({ length: WHOLE_BEAT_EVERY }, (_, i) => i === WHOLE_BEAT_EVERY - 1));
  });

  it("drops malformed messages on every subject and changes nothing", async () => {
    const [a, b] = [await replica("a"), await replica("b")];
    const session = nodeOn(a);
    const garbage = [
      "not json",
      JSON.stringify({ type: "beat", replica: "UPPER", sent_at: 1, nodes: [] }),
      JSON.stringify({ type: "beat", replica: "x", sent_at: 1, nodes: [{ id: "zz" }] }),
      JSON.stringify({ type: "beat", replica: "x", sent_at: 1, nodes: [], echoes: [{ replica: a.id, sent_at: 1, held_ms: -5 }] }),
      JSON.stringify({ type: "beat", replica: "x", sent_at: 2, nodes: [], loads: [[NODE, 1, null]] }),
      JSON.stringify({ type: "beat", replica: "x", sent_at: 2, base: 1, nodes: [], loads: [[NODE, -1, null]] }),
      JSON.stringify({ type: "beat", replica: "x", sent_at: 2, base: 1, nodes: [], left: ["zz"] }),
      JSON.stringify({ type: "beat", replica: "x", sent_at: 2, nodes: [], echoes: [{ replica: a.id, sent_at: 1, held_ms: 0, resync: false }] }),
      JSON.stringify({ type: "assign", from: b.id, node: NODE, job: { type: "job.assign" } }),
      JSON.stringify({ type: "part", node: NODE, job_id: "j", part: { type: "text-delta", text: 5 } }),
      JSON.stringify({ type: "explode" }),
      JSON.stringify({ type: "standing", replica: "x", node: "zz", quarantined: true }),
      JSON.stringify({ type: "standing", replica: "x", node: NODE, quarantined: "yes" }),
      JSON.stringify({ type: "judgments", replica: "x", judgments: [] }),
      JSON.stringify({ type: "judgments", replica: "x", judgments: [{ kind: "outcome", node: NODE, outcome: "exploded" }] }),
      JSON.stringify({ type: "judgments", replica: "x", judgments: [{ kind: "check", node: "zz", passed: true }] }),
    ];
    // A bus never hears what it published itself (nats-bus.ts noEcho), so each replica gets the garbage from the other.
    for (const subject of [`tessera.v1.${cluster}.beats`, `tessera.v1.${cluster}.standing`, `tessera.v1.${cluster}.replica.${a.id}.commands`, `tessera.v1.${cluster}.replica.${b.id}.reports`]) {
      for (const g of garbage) for (const bus of [a.bus, b.bus]) bus.publish(subject, new TextEncoder().encode(g));
    }
    await Promise.all([a.bus.flush(), b.bus.flush()]);
    a.link.beat();
    await until(() => b.registry.get(NODE)?.online === true, "a good beat still lands after the garbage");
    expect(session.sent).toEqual([]);
    expect(b.sink.calls).toEqual([]);
    expect([...b.registry.all()].map((n) => n.id)).toEqual([NODE]);
    expect([a.quarantines, b.quarantines]).toEqual([[], []]);
  });
});

describe("beatParts", () => {
  const beat = { type: "beat" as const, replica: "a", sent_at: 7, nodes: Array.from({ length: 30 }, (_, i) => summaryOf(`e${i.toString(16).padStart(63, "0")}`)), echoes: [{ replica: "b", sent_at: 3, held_ms: 1 }] };

  it("splits a beat into parts no larger than the limit, every node once and in order, the echoes on part 0", () => {
    const parts = beatParts(beat, 2_000, () => expect.unreachable());
    expect(parts.length).toBeGreaterThan(3);
    for (const part of parts) expect(encodeBusMessage(part).byteLength).toBeLessThanOrEqual(2_000);
    expect(parts.flatMap((p) => p.nodes)).toEqual(beat.nodes);
    expect(parts.map((p) => [p.part, p.parts, p.sent_at, p.echoes])).toEqual(parts.map((_, i) => [i, parts.length, 7, i === 0 ? beat.echoes : undefined]));
    expect(parts.every((p) => ReplicaBeat.safeParse(p).success)).toBe(true);
  });

  it("splits a delta's summaries, loads and departures the same way, each once and in order", () => {
    const delta = { ...beat, base: 5, nodes: beat.nodes.slice(0, 5), loads: beat.nodes.map((n, i): [string, number, number | null] => [n.id, i, i % 2 ? null : i / 3]), left: beat.nodes.slice(5, 20).map((n) => n.id) };
    const parts = beatParts(delta, 1_500, () => expect.unreachable());
    expect(parts.length).toBeGreaterThan(3);
    for (const part of parts) expect(encodeBusMessage(part).byteLength).toBeLessThanOrEqual(1_500);
    expect(parts.flatMap((p) => p.nodes)).toEqual(delta.nodes);
    expect(parts.flatMap((p) => p.loads)).toEqual(delta.loads);
    expect(parts.flatMap((p) => p.left)).toEqual(delta.left);
    expect(parts.every((p) => p.base === 5 && ReplicaBeat.safeParse(p).success)).toBe(true);
  });

  it("leaves out, and names, a node whose summary alone is over a part's room", () => {
    const huge = { ...summaryOf("f".repeat(64)), version: "v".repeat(64), models: Array.from({ length: 20 }, (_, i) => ({ id: `model-${i}-${"m".repeat(100)}`, backend: "embedded" as const })) };
    const tooLarge: string[] = [];
    const parts = beatParts({ ...beat, nodes: [beat.nodes[0]!, huge, beat.nodes[1]!] }, 2_000, (id) => tooLarge.push(id));
    expect(tooLarge).toEqual([huge.id]);
    expect(parts.flatMap((p) => p.nodes.map((n) => n.id))).toEqual([beat.nodes[0]!.id, beat.nodes[1]!.id]);
  });
});
