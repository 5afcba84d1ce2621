import type { ErrorCode, ShardOffer, StreamPart } from "@tessera/protocol";
import type { ShardedModelSummary } from "../sharding/index.js";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { LiveNode, NodeRegistry } from "../registry.js";
import type { JobSink } from "../workers/job-sink.js";
import { type Bus, DEFAULT_CLUSTER, type PublishOutcome, subjectsOf } from "./bus.js";
import { JobCommand, type JobReport, JobReports, type Judgment, type NodeLoad, type NodeSummary, ReplicaBeat, StandingChange, decodeBusMessage, encodeBusMessage } from "./bus-messages.js";
import type { StandingJudgment } from "../trust/node-standing.js";
import { RemoteWorker } from "./remote-worker.js";

/**
 * How often a replica beats. A beat carries what changed in the nodes whose sessions the replica holds, so it is also
 * how fast a new node, a drain or a departure reaches the others.
 */
export const BEAT_INTERVAL_MS = 1_000;
/**
 * Every this many beats a beat is whole (every node's summary) even when no replica asked for one: a bound on how
 * long any difference between a replica's list and what another shows of it could last (design.md, "Beats").
 */
export const WHOLE_BEAT_EVERY = 30;
/**
 * A node's session round trip changes a little at every beat (it is smoothed); a delta tells it when it moved by more
 * than this share of what was last told, or by more than RTT_TOLD_MIN_MS, whichever is larger. Routing ranks nodes by
 * round trip plus load, so a tenth of the round trip moves no decision a whole beat would not.
 */
const RTT_TOLD_SHARE = 0.1;
const RTT_TOLD_MIN_MS = 0.5;
/**
 * A replica not heard for this long is gone: the nodes it held are taken offline here, and the jobs this replica ran
 * on them continue elsewhere. Three missed beats, so one late beat on a busy machine is not a death.
 */
export const REPLICA_SILENT_AFTER_MS = 3_500;
/**
 * How long a replica gathers its judgments of nodes before telling the others. They come one a finished job, and sent
 * one a turn of the event loop they were most of the bus's traffic (0.70 messages a job of 0.96, three replicas at 230
 * jobs/s), each decoded by every other replica. A tenth of a second later changes no decision: routing weighs a node's
 * last 200 outcomes, and a quarantine is told at once (after the judgments gathered before it).
 */
export const JUDGMENTS_FLUSH_MS = 100;
/**
 * Weight of a new round-trip sample in a peer's smoothed round trip (one sample a beat, so about the last five
 * seconds count): steady enough that one beat delayed by a busy loop does not move routing, quick enough to follow load.
 */
const PEER_RTT_SMOOTHING = 0.2;

/** Another replica as this one hears it. */
interface Peer {
  /** This replica's clock when the peer's last beat arrived. */
  lastBeatAt: number;
  /** That beat's `sent_at` on the peer's clock, echoed back in this replica's next beat. */
  lastBeatSentAt: number;
  /** The nodes it holds, as its beats told them. */
  nodes: Set<string>;
  /** The `sent_at` of its last beat heard whole and in sequence: the `base` its next delta must name to apply in full. */
  syncedAt: number | undefined;
  /** A delta of it could not be applied in full (its base was not syncedAt): echoes ask it for a whole beat. */
  needsWhole: boolean;
  /** The bus's round trip to the peer and back, smoothed, milliseconds; undefined until the peer echoed a beat. */
  rttMs: number | undefined;
  /** The beat in parts being heard (ReplicaBeat): its `sent_at`, the nodes its parts listed so far, the parts heard. */
  hearing?: { sentAt: number; nodes: Set<string>; parts: Set<number> };
}

export interface ReplicaLinkDeps {
  bus: Bus;
  replicaId: string;
  /** The cluster's name on the bus (bus.ts subjectsOf); DEFAULT_CLUSTER unless given. */
  cluster?: string;
  registry: NodeRegistry;
  /** The local job manager: where reports about this replica's jobs end up, local node or remote; `dispatch` hands queued jobs to a node that just appeared. */
  jobs: JobSink & { dispatch(): void };
  clock: Clock;
  logger: Logger;
  /** A node shown through another replica opened its session here: this replica holds it now (the record says so). */
  onHeldHere(nodeId: string): void;
  /** Where another replica's quarantines, releases and judgments apply here (trust/node-standing.ts). */
  standing: { applyQuarantine(nodeId: string, quarantined: boolean): void; applyJudgment(judgment: StandingJudgment): void };
  /** The layer-span files a node held here offers (the sharding manager's record), sent in beats. */
  stageOffers?(nodeId: string): ShardOffer[];
  /** A node held by another replica offers other span files than its last beat said (none: it withdrew them). */
  onPeerOffers?(nodeId: string, offers: ShardOffer[]): void;
  /** The splits of the sharded models whose pipelines this replica runs, by pipeline node id (sent in beats). */
  pipelineSummaries?(): ReadonlyMap<string, ShardedModelSummary>;
  /** A pipeline another replica runs, with its split as that replica's beat says it (undefined: it is gone). */
  onPeerPipeline?(nodeId: string, summary: ShardedModelSummary | undefined): void;
}

/**
 * One replica's end of the bus (design.md). It
 * - beats: tells the others which nodes it holds sessions for;
 * - shows the others' nodes in its registry, each with a RemoteWorker, and takes them offline when their replica falls
 *   silent or stops listing them;
 * - runs the others' assignments on its nodes, and sends those jobs' reports back (`sessionSink`);
 * - turns reports about its own jobs on other replicas' nodes into calls on its job manager.
 */
export class ReplicaLink {
  /** The other replicas: when each last beat, the nodes it listed, the bus's round trip to it. */
  private readonly peers = new Map<string, Peer>();
  /** Jobs of other replicas running on this replica's nodes: job id → the replica that holds it, and its node. */
  private readonly relayed = new Map<string, { origin: string; nodeId: string }>();
  /** Reports waiting for the end of this turn of the event loop, by the replica they go to. */
  private readonly outbox = new Map<string, JobReport[]>();
  /** Judgments gathered for every other replica, sent JUDGMENTS_FLUSH_MS after the first of them. */
  private judgments: Judgment[] = [];
  private judgmentsTimer: ReturnType<typeof setTimeout> | undefined;
  /** Stopped: judgments are no longer gathered (the bus may be closed when the timer would fire). */
  private stopped = false;
  /** Nodes shown here through another replica. */
  private readonly remoteNodes = new Set<string>();
  /** When each of those opened the session its route reaches (NodeSummary.session_opened_at), where the beat said. */
  private readonly routeOpenedAt = new Map<string, number | undefined>();
  /** The span offers each of those last listed, as JSON (only a change reaches the sharding manager). */
  private readonly peerOffers = new Map<string, string>();

  /**
   * What this replica's beats told of each node it holds: its summary but for the load (as JSON), and the load last
   * told. The next delta carries the differences.
   */
  private told = new Map<string, Told>();
  /** The `sent_at` of this replica's last beat (the next delta's base), and beats since the last whole one. */
  private lastSentAt: number | undefined;
  private beatsSinceWhole = 0;
  /** The next beat is whole: a replica asked (`resync`) or a new one appeared. */
  private wholeDue = true;

  private readonly unsubscribes: Array<() => void> = [];
  private lastBeatAt = Number.NEGATIVE_INFINITY;
  private readonly subjects: ReturnType<typeof subjectsOf>;

  /** The sink the session hub reports to: reports about other replicas' jobs go back over the bus, the rest stay here. */
  readonly sessionSink: JobSink;

  constructor(private readonly d: ReplicaLinkDeps) {
    this.subjects = subjectsOf(d.cluster ?? DEFAULT_CLUSTER);
    const local = d.jobs;
    this.sessionSink = {
      accepted: (nodeId, jobId) => (this.relayed.has(jobId) ? this.report(jobId, { type: "accepted", node: nodeId, job_id: jobId }) : local.accepted(nodeId, jobId)),
      rejected: (nodeId, jobId, reason) => {
        if (!this.relayed.has(jobId)) return local.rejected(nodeId, jobId, reason);
        this.report(jobId, { type: "rejected", node: nodeId, job_id: jobId, reason: reason.slice(0, 500) });
        this.relayed.delete(jobId);
      },
      part: (nodeId, jobId, part) => {
        if (!this.relayed.has(jobId)) return local.part(nodeId, jobId, part);
        this.report(jobId, { type: "part", node: nodeId, job_id: jobId, part });
        if (endsJob(part)) this.relayed.delete(jobId);
      },
      failed: (workerId, jobId, code, message) => {
        if (!this.relayed.has(jobId)) return local.failed(workerId, jobId, code, message);
        this.report(jobId, { type: "failed", node: workerId, job_id: jobId, code, message: message.slice(0, 500) });
        this.relayed.delete(jobId);
      },
      lost: (nodeId, reason) => {
        local.lost(nodeId, reason);
        const origins = new Set<string>();
        for (const [jobId, r] of this.relayed) {
          if (r.nodeId !== nodeId) continue;
          origins.add(r.origin);
          this.relayed.delete(jobId);
        }
        for (const origin of origins) this.send(origin, { type: "lost", node: nodeId, reason: reason.slice(0, 500) });
      },
    };
  }

  /** Subscribes, waits until the server has the subscriptions (nothing sent to this replica after that is missed), and beats. */
  async start(): Promise<void> {
    const { bus, replicaId, logger } = this.d;
    const subjects = this.subjects;
    this.unsubscribes.push(
      bus.subscribe(subjects.beats, (data) => {
        // Read before the decode, which a beat of many nodes makes long: the round trip measures the bus, not that.
        const receivedAt = this.d.clock.now();
        const decoded = decodeBusMessage(ReplicaBeat, data);
        if (!decoded.ok) return logger.warn({ why: decoded.why }, "malformed replica beat dropped");
        if (decoded.message.replica !== replicaId) this.onBeat(decoded.message, receivedAt);
      }),
      bus.subscribe(subjects.standing, (data) => {
        const decoded = decodeBusMessage(StandingChange, data);
        if (!decoded.ok) return logger.warn({ why: decoded.why }, "malformed standing change dropped");
        const change = decoded.message;
        if (change.replica === replicaId) return;
        if (change.type === "standing") return this.d.standing.applyQuarantine(change.node, change.quarantined);
        for (const j of change.judgments) {
          this.d.standing.applyJudgment(j.kind === "outcome" ? { nodeId: j.node, kind: "outcome", outcome: j.outcome } : { nodeId: j.node, kind: "check", passed: j.passed });
        }
      }),
      bus.subscribe(subjects.commands(replicaId), (data) => {
        const decoded = decodeBusMessage(JobCommand, data);
        if (!decoded.ok) return logger.warn({ why: decoded.why }, "malformed job command dropped");
        this.onCommand(decoded.message);
      }),
      bus.subscribe(subjects.reports(replicaId), (data) => {
        const decoded = decodeBusMessage(JobReports, data);
        if (!decoded.ok) return logger.warn({ why: decoded.why }, "malformed job reports dropped");
        for (const report of decoded.message.reports) this.onReport(report, decoded.message.from);
      }),
    );
    await bus.flush();
    this.beat();
  }

  /** Beats when one is due and takes silent replicas' nodes offline; the coordinator's 1 s tick calls it. */
  tick(): void {
    if (this.d.clock.now() - this.lastBeatAt >= BEAT_INTERVAL_MS) this.beat();
    this.sweepPeers();
  }

  async stop(): Promise<void> {
    this.flushJudgments();
    this.stopped = true;
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    await this.d.bus.flush().catch(() => undefined);
  }

  /**
   * The other replicas heard from within REPLICA_SILENT_AFTER_MS, with the number of nodes each holds and the bus's
   * round trip to each (undefined until measured).
   */
  livePeers(): Array<{ replica: string; nodes: number; lastBeatAt: number; rttMs: number | undefined }> {
    return [...this.peers].map(([replica, p]) => ({ replica, nodes: p.nodes.size, lastBeatAt: p.lastBeatAt, rttMs: p.rttMs }));
  }

  /**
   * Tells the other replicas how this one judged a node, so their tallies follow; the judgments of JUDGMENTS_FLUSH_MS
   * go in one message, in order.
   */
  announceJudgment(judgment: StandingJudgment): void {
    if (this.stopped) return;
    this.judgments.push(judgment.kind === "outcome" ? { kind: "outcome", node: judgment.nodeId, outcome: judgment.outcome } : { kind: "check", node: judgment.nodeId, passed: judgment.passed });
    this.judgmentsTimer ??= setTimeout(() => this.flushJudgments(), JUDGMENTS_FLUSH_MS);
  }

  private flushJudgments(): void {
    clearTimeout(this.judgmentsTimer);
    this.judgmentsTimer = undefined;
    const judgments = this.judgments;
    this.judgments = [];
    if (judgments.length > 0) this.publish(this.subjects.standing, { type: "judgments", replica: this.d.replicaId, judgments });
  }

  /** Tells the other replicas that this one quarantined or released `nodeId`, after the judgments gathered before it. */
  announceQuarantine(nodeId: string, quarantined: boolean): void {
    this.flushJudgments();
    this.publish(this.subjects.standing, { type: "standing", replica: this.d.replicaId, node: nodeId, quarantined });
  }

  /**
   * Publishes this replica's beat now (the timer does it every BEAT_INTERVAL_MS), echoing each peer's last beat: a
   * delta of what changed since the last beat, or whole (`whole`, the first, one a peer asked for, every
   * WHOLE_BEAT_EVERY).
   */
  beat(whole = false): void {
    const summaries: NodeSummary[] = [];
    // Held here: a node with its session here, or a pipeline this replica runs (a sharded model it leads).
    const pipelines = this.d.pipelineSummaries?.();
    for (const node of this.d.registry.all()) if (node.online && node.worker && !(node.worker instanceof RemoteWorker)) summaries.push(this.summaryOf(node, pipelines?.get(node.id)));
    // Read after the summaries are built, so the round trips measured from this beat leave that work out. A beat's
    // sent_at names it as a delta's base, so two beats in one millisecond (a whole one asked for beside the timer's)
    // still get two.
    const now = Math.max(this.d.clock.now(), (this.lastSentAt ?? Number.NEGATIVE_INFINITY) + 1);
    this.lastBeatAt = now;
    const echoes = [...this.peers].map(([replica, p]) => ({ replica, sent_at: p.lastBeatSentAt, held_ms: Math.max(0, now - p.lastBeatAt), ...(p.needsWhole ? { resync: true as const } : {}) }));
    whole ||= this.wholeDue || this.lastSentAt === undefined || this.beatsSinceWhole + 1 >= WHOLE_BEAT_EVERY;
    const told = new Map<string, Told>();
    const nodes: NodeSummary[] = [];
    const loads: NodeLoad[] = [];
    for (const summary of summaries) {
      const before = this.told.get(summary.id);
      const current = toldOf(summary, before);
      if (whole || before?.summary !== current.summary) nodes.push(summary);
      else if (current.activeJobs !== before.activeJobs || rttMoved(before.rttMs, current.rttMs)) loads.push([summary.id, current.activeJobs, current.rttMs ?? null]);
      else {
        // Told as it was: a round trip drifting a little at a time is measured against what was last told.
        told.set(summary.id, { ...current, activeJobs: before.activeJobs, rttMs: before.rttMs });
        continue;
      }
      told.set(summary.id, current);
    }
    const beat: ReplicaBeat = whole
      ? { type: "beat", replica: this.d.replicaId, sent_at: now, nodes, echoes }
      : { type: "beat", replica: this.d.replicaId, sent_at: now, base: this.lastSentAt, nodes, loads, left: [...this.told.keys()].filter((id) => !told.has(id)), echoes };
    this.told = told;
    this.lastSentAt = now;
    this.beatsSinceWhole = whole ? 0 : this.beatsSinceWhole + 1;
    this.wholeDue = false;
    const encoded = encodeBusMessage(beat);
    const limit = this.d.bus.maxPayload();
    if (encoded.byteLength <= limit || limit === 0) return void this.d.bus.publish(this.subjects.beats, encoded);
    const parts = beatParts(beat, limit, (node) => this.d.logger.error({ node, limit }, "a node's summary alone is over the bus's message limit; the other replicas will not show it"));
    for (const part of parts) this.publish(this.subjects.beats, part);
  }

  /** Takes offline the nodes of replicas not heard for REPLICA_SILENT_AFTER_MS. */
  sweepPeers(): void {
    const now = this.d.clock.now();
    for (const [replica, peer] of this.peers) {
      if (now - peer.lastBeatAt < REPLICA_SILENT_AFTER_MS) continue;
      this.d.logger.warn({ replica, nodes: peer.nodes.size, silent_ms: now - peer.lastBeatAt }, "replica silent; taking its nodes offline here");
      for (const nodeId of peer.nodes) this.dropRemote(nodeId, replica, `its replica ${replica} went silent`);
      this.cancelRelayedFor(replica, `its replica ${replica} went silent`);
      this.peers.delete(replica);
    }
  }

  /**
   * Stops the jobs `origin` ran on this replica's nodes: their client was on it, so nobody reads what they write (a
   * replica that was only slow, not dead, fails them over by its own deadlines).
   */
  private cancelRelayedFor(origin: string, reason: string): void {
    for (const [jobId, r] of this.relayed) {
      if (r.origin !== origin) continue;
      this.relayed.delete(jobId);
      const worker = this.d.registry.get(r.nodeId)?.worker;
      if (worker && !(worker instanceof RemoteWorker)) worker.cancel(jobId, reason);
    }
  }

  private summaryOf(node: LiveNode, sharded: ShardedModelSummary | undefined): NodeSummary {
    let active = node.activeJobs.size;
    for (const r of this.relayed.values()) if (r.nodeId === node.id) active++;
    const offers = this.d.stageOffers?.(node.id) ?? [];
    const rtt = node.session?.rttMs();
    const openedAt = node.session?.openedAt;
    return {
      id: node.id,
      operator: node.operatorId,
      version: node.version,
      hardware: node.hardware,
      models: node.models,
      max_concurrency: node.maxConcurrency,
      draining: node.draining,
      active_jobs: active,
      ...(offers.length > 0 ? { stage_offers: offers } : {}),
      ...(rtt !== undefined ? { rtt_ms: rtt } : {}),
      ...(openedAt !== undefined ? { session_opened_at: openedAt } : {}),
      ...(sharded ? { sharded } : {}),
    };
  }

  private onBeat(beat: ReplicaBeat, now: number): void {
    let peer = this.peers.get(beat.replica);
    if (!peer) {
      peer = { lastBeatAt: 0, lastBeatSentAt: 0, nodes: new Set<string>(), syncedAt: undefined, needsWhole: false, rttMs: undefined };
      this.peers.set(beat.replica, peer);
      // It has heard none of this replica's list: the next beat is whole.
      this.wholeDue = true;
    }
    peer.lastBeatAt = now;
    peer.lastBeatSentAt = beat.sent_at;
    const echo = beat.echoes?.find((e) => e.replica === this.d.replicaId);
    if (echo) this.notePeerRtt(peer, now - echo.sent_at - echo.held_ms);
    if (echo?.resync) this.wholeDue = true;
    // A beat in parts: a part of a later beat abandons the one not heard whole (its departures wait for the next).
    if (peer.hearing?.sentAt !== beat.sent_at) peer.hearing = { sentAt: beat.sent_at, nodes: new Set(), parts: new Set() };
    const hearing = peer.hearing;
    // A delta on a beat not heard whole here: what it says is true and applied, but what came between is missing.
    if (beat.base !== undefined && beat.base !== peer.syncedAt) peer.needsWhole = true;
    for (const summary of beat.nodes) {
      hearing.nodes.add(summary.id);
      // Counted as the peer's at once, so its silence takes the node offline even before the beat is whole.
      peer.nodes.add(summary.id);
      if (!this.showRemote(summary, beat.replica)) continue;
      this.noteOffers(summary);
      if (summary.sharded) this.d.onPeerPipeline?.(summary.id, summary.sharded);
    }
    if (beat.base !== undefined) this.applyDelta(peer, beat);
    hearing.parts.add(beat.part ?? 0);
    if (hearing.parts.size < (beat.parts ?? 1)) return;
    peer.hearing = undefined;
    if (beat.base !== undefined) {
      if (!peer.needsWhole) peer.syncedAt = beat.sent_at;
      return;
    }
    for (const nodeId of peer.nodes) if (!hearing.nodes.has(nodeId)) this.dropRemote(nodeId, beat.replica, `it left replica ${beat.replica}`);
    peer.nodes = hearing.nodes;
    peer.syncedAt = beat.sent_at;
    peer.needsWhole = false;
  }

  /**
   * A delta's loads and departures, and what a beat says of every node it did not name: still there (touched, so the
   * registry's sweep leaves it online) at the bus's round trip measured now.
   */
  private applyDelta(peer: Peer, beat: ReplicaBeat): void {
    const { registry } = this.d;
    for (const [nodeId, activeJobs, rttMs] of beat.loads ?? []) {
      const shown = registry.get(nodeId);
      if (!peer.nodes.has(nodeId) || !(shown?.worker instanceof RemoteWorker) || shown.worker.replica !== beat.replica) continue;
      shown.jobsElsewhere = Math.max(0, activeJobs - shown.activeJobs.size);
      shown.worker.nodeRttMs = rttMs ?? undefined;
    }
    for (const nodeId of beat.left ?? []) {
      if (peer.nodes.delete(nodeId)) this.dropRemote(nodeId, beat.replica, `it left replica ${beat.replica}`);
    }
    for (const nodeId of peer.nodes) {
      const worker = registry.get(nodeId)?.worker;
      if (!(worker instanceof RemoteWorker) || worker.replica !== beat.replica) continue;
      registry.touch(nodeId, worker);
      worker.busRttMs = peer.rttMs;
    }
  }

  /**
   * One round trip to `peer` over the bus: from this replica's beat to the peer's echo of it, less the time the peer
   * held it. Both ends are read on this replica's clock. A sample outside [0, REPLICA_SILENT_AFTER_MS] (an echo of a
   * beat this replica never sent, or a clock stepped back) is ignored.
   */
  private notePeerRtt(peer: Peer, sample: number): void {
    if (!(sample >= 0 && sample <= REPLICA_SILENT_AFTER_MS)) return;
    peer.rttMs = peer.rttMs === undefined ? sample : peer.rttMs + PEER_RTT_SMOOTHING * (sample - peer.rttMs);
  }

  /**
   * What the beat says of a remote node's load and round trip: the jobs other replicas run on it (its replica's count
   * less this replica's own), and the round trip of its session there plus the bus's round trip to that replica (a
   * job sent this way crosses the bus down and its answers cross it back up).
   */
  private noteLoad(node: LiveNode, summary: NodeSummary, worker: RemoteWorker, replica: string): void {
    node.jobsElsewhere = Math.max(0, summary.active_jobs - node.activeJobs.size);
    worker.nodeRttMs = summary.rtt_ms;
    worker.busRttMs = this.peers.get(replica)?.rttMs;
  }

  /** A remote node's span offers, when they changed since its last beat. */
  private noteOffers(summary: NodeSummary): void {
    const offers = summary.stage_offers ?? [];
    const key = JSON.stringify(offers);
    if ((this.peerOffers.get(summary.id) ?? "[]") === key) return;
    this.peerOffers.set(summary.id, key);
    this.d.onPeerOffers?.(summary.id, offers);
  }

  /**
   * Shows a node another replica holds, routed through that replica; a node held here (its session, or a pipeline
   * this replica runs) stays local. True when it is shown through `replica`.
   *
   * Two replicas may list one node for a while: the node left one (a half-open connection, a dead network path) and
   * opened a session on the other before the first noticed. The later session is the live one (the node's own signed
   * time of each, so no two replicas' clocks are compared): a replica holding the earlier one closes it, and a replica
   * routing to the node keeps its route unless the other listing's session is later. Without that rule every beat of
   * each would move the route, and each move fails over all the node's jobs. Two sessions opened in the same second
   * keep the route there is (the stale one ends when its replica notices).
   */
  private showRemote(summary: NodeSummary, replica: string): boolean {
    const { registry } = this.d;
    const known = registry.get(summary.id);
    if (known?.worker && !(known.worker instanceof RemoteWorker) && known.online) {
      // Its session moved here (the other replica has not noticed yet), or both replicas ran its pipeline for a beat.
      const own = known.session?.openedAt;
      if (own !== undefined && summary.session_opened_at !== undefined && summary.session_opened_at > own) {
        this.d.logger.warn({ node: summary.id.slice(0, 12), replica }, "node opened a later session on another replica; closing its session here");
        known.session!.close(4000, `the node opened a later session on replica ${replica}`);
      }
      this.remoteNodes.delete(summary.id);
      return false;
    }
    const current = known?.worker;
    if (current instanceof RemoteWorker && current.replica !== replica && !later(summary.session_opened_at, this.routeOpenedAt.get(summary.id))) return false;
    if (current instanceof RemoteWorker && current.replica === replica) {
      this.routeOpenedAt.set(summary.id, summary.session_opened_at);
      registry.touch(summary.id, current);
      known!.draining = summary.draining;
      known!.maxConcurrency = summary.max_concurrency;
      known!.models = summary.models;
      this.noteLoad(known!, summary, current, replica);
      return true;
    }
    // New here, or it moved from another replica: attaching the new route closes the old one, whose jobs are lost with
    // that session and continue elsewhere (possibly on the same node, through its new replica).
    this.remoteNodes.add(summary.id);
    this.routeOpenedAt.set(summary.id, summary.session_opened_at);
    registry.register({ type: "register", public_key: summary.id, version: summary.version, hardware: summary.hardware, models: summary.models, max_concurrency: summary.max_concurrency }, summary.operator);
    const worker = new RemoteWorker(summary.id, replica, (to, command) => this.publish(this.subjects.commands(to), command), this.d.replicaId, this.d.jobs, (nodeId, reason) => {
      // The old replica is told to stop them first: the failover's own cancels go by the node's new route, which never had them.
      const record = this.d.registry.get(nodeId);
      if (record) this.cancelRoute(record, worker, reason);
      this.d.jobs.lost(nodeId, reason);
      // Closed because the node's own session replaced the route (the registry sets it before closing the old worker).
      if (this.d.registry.get(nodeId)?.session) {
        this.remoteNodes.delete(nodeId);
        this.d.onHeldHere(nodeId);
      }
    });
    const shown = registry.attach(summary.id, worker);
    if (shown) this.noteLoad(shown, summary, worker, replica);
    if (summary.draining) registry.setDraining(summary.id);
    this.d.jobs.dispatch();
    return true;
  }

  /** Whether the node is shown here through another replica (its status in the store is that replica's to write). */
  isRemote(nodeId: string): boolean {
    return this.remoteNodes.has(nodeId);
  }

  private dropRemote(nodeId: string, replica: string, reason: string): void {
    this.peerOffers.delete(nodeId);
    this.d.onPeerPipeline?.(nodeId, undefined);
    const shown = this.d.registry.get(nodeId);
    const worker = shown?.worker;
    if (worker instanceof RemoteWorker && worker.replica === replica) {
      this.cancelRoute(shown!, worker, reason);
      this.d.registry.detach(nodeId, worker, reason);
    }
    // Still shown through another replica (it moved): leave it marked remote.
    const record = this.d.registry.get(nodeId);
    if (record && !(record.worker instanceof RemoteWorker)) record.jobsElsewhere = 0;
    if (!(record?.worker instanceof RemoteWorker)) {
      this.remoteNodes.delete(nodeId);
      this.routeOpenedAt.delete(nodeId);
    }
  }

  /**
   * Asks the replica behind a route this one stops using to stop the jobs it sent that way: once the route is gone
   * the failover's cancels cannot reach them, and a replica that is alive (only late, or holding a half-open session)
   * would run them to the end for nobody. To a dead replica the message goes nowhere, which is fine.
   */
  private cancelRoute(node: LiveNode, route: RemoteWorker, reason: string): void {
    for (const jobId of node.activeJobs) route.cancel(jobId, reason);
  }

  private onCommand(command: JobCommand): void {
    const node = this.d.registry.get(command.node);
    if (command.type === "cancel") {
      const relayed = this.relayed.get(command.job_id);
      if (!relayed || relayed.origin !== command.from || relayed.nodeId !== command.node) return;
      this.relayed.delete(command.job_id);
      node?.worker?.cancel(command.job_id, command.reason);
      return;
    }
    const { type: _type, ...assignment } = command.job;
    if (!node?.worker || node.worker instanceof RemoteWorker || !node.online) {
      this.send(command.from, { type: "rejected", node: command.node, job_id: assignment.job_id, reason: `node is not on replica ${this.d.replicaId}` });
      return;
    }
    this.relayed.set(assignment.job_id, { origin: command.from, nodeId: command.node });
    node.worker.assign(assignment);
  }

  private onReport(report: JobReport, from: string): void {
    const { jobs, registry } = this.d;
    const worker = registry.get(report.node)?.worker;
    const current = worker instanceof RemoteWorker && worker.replica === from;
    if (current) registry.touch(report.node, worker);
    switch (report.type) {
      case "accepted":
        return jobs.accepted(report.node, report.job_id);
      case "rejected":
        return jobs.rejected(report.node, report.job_id, report.reason);
      case "part":
        return jobs.part(report.node, report.job_id, report.part);
      case "lost":
        // From a route this replica left, the jobs it carried were failed over when it was closed.
        return current ? jobs.lost(report.node, report.reason) : undefined;
      case "failed":
        return jobs.failed(report.node, report.job_id, report.code as ErrorCode, report.message);
    }
  }

  private report(jobId: string, report: JobReport): void {
    this.send(this.relayed.get(jobId)!.origin, report);
  }

  /** Queues a report for `origin`; what is queued in one turn of the event loop goes in one message, in order. */
  private send(origin: string, report: JobReport): void {
    const queued = this.outbox.get(origin);
    if (queued) return void queued.push(report);
    this.outbox.set(origin, [report]);
    if (this.outbox.size === 1) queueMicrotask(() => this.flushOutbox());
  }

  private flushOutbox(): void {
    for (const [origin, reports] of this.outbox) this.sendReports(origin, reports);
    this.outbox.clear();
  }

  /**
   * A turn's reports for `origin` in one message; when that is larger than the bus carries, one message each, and a
   * report over it alone (a part larger than that) fails its job at `origin` instead, which cancels it here.
   */
  private sendReports(origin: string, reports: JobReport[]): void {
    const send = (batch: JobReport[]) => this.publish(this.subjects.reports(origin), { type: "reports", from: this.d.replicaId, reports: batch });
    if (send(reports) !== "too_large") return;
    for (const report of reports) {
      if (reports.length > 1 && send([report]) !== "too_large") continue;
      if (report.type !== "lost") send([{ type: "failed", node: report.node, job_id: report.job_id, code: "internal_error", message: "the node's report is larger than the replicas' bus carries" }]);
    }
  }

  private publish(subject: string, message: Parameters<typeof encodeBusMessage>[0]): PublishOutcome {
    return this.d.bus.publish(subject, encodeBusMessage(message));
  }
}

/**
 * Whether a session opened at `candidate` is known to be later than one opened at `current` (node-clock seconds). A
 * listing that does not say (a pipeline, a replica of an earlier version) is taken as later than one that does not
 * say either, as before sessions said when they opened, and never as later than one that does.
 */
function later(candidate: number | undefined, current: number | undefined): boolean {
  if (candidate === undefined) return current === undefined;
  return current === undefined || candidate > current;
}

/** The last part a node sends for a job. */
function endsJob(part: StreamPart): boolean {
  return part.type === "finish" || part.type === "error";
}

/** What a beat told of a node: its summary but for the load, as JSON, and its load. */
interface Told {
  summary: string;
  activeJobs: number;
  rttMs: number | undefined;
  /** The summary's hardware and models as told (the registry replaces them, never changes them in place), and its other fields but the load. */
  hardware: NodeSummary["hardware"];
  models: NodeSummary["models"];
  rest: string;
}

/**
 * What a beat would tell of `summary`. Its JSON is what a delta compares, and writing it for every node every second
 * was most of a beat's cost at thousands of nodes; the hardware and models are most of it, and are the same objects
 * until the node says otherwise, so the JSON told `before` is kept while they and the small fields are the same.
 */
function toldOf(summary: NodeSummary, before: Told | undefined): Told {
  const { active_jobs: activeJobs, rtt_ms: rttMs, hardware, models, ...fields } = summary;
  const rest = JSON.stringify(fields);
  const same = before !== undefined && before.hardware === hardware && before.models === models && before.rest === rest;
  return { summary: same ? before.summary : JSON.stringify({ ...fields, hardware, models }), activeJobs, rttMs, hardware, models, rest };
}

/** Whether a node's round trip moved enough since the one last told to tell it again (RTT_TOLD_SHARE). */
function rttMoved(told: number | undefined, now: number | undefined): boolean {
  if (told === undefined || now === undefined) return told !== now;
  return Math.abs(now - told) > Math.max(RTT_TOLD_MIN_MS, RTT_TOLD_SHARE * told);
}

/**
 * `beat` as parts of at most `limit` bytes each (ReplicaBeat): its entries in order (nodes, then loads, then
 * departures), as many to a part as fit, the echoes on part 0 only. A node whose summary alone is over the room a part
 * has cannot be told: `tooLarge` hears of it, and it is left out (the other replicas stop showing it, as they would a
 * node that left).
 */
export function beatParts(beat: ReplicaBeat, limit: number, tooLarge: (nodeId: string) => void): ReplicaBeat[] {
  // The envelope counted with the echoes and the widest part numbers, so every part fits whatever it carries.
  const empty = { ...beat, nodes: [], ...(beat.loads ? { loads: [] } : {}), ...(beat.left ? { left: [] } : {}) };
  const room = limit - encodeBusMessage({ ...empty, part: 99_999, parts: 300_000 }).byteLength;
  type Page = { nodes: NodeSummary[]; loads: NodeLoad[]; left: string[] };
  const pages: Page[] = [{ nodes: [], loads: [], left: [] }];
  let used = 0;
  const place = (entry: unknown, nodeId: string, put: (page: Page) => void): void => {
    // Its JSON and the comma before it.
    const size = Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (size > room) return tooLarge(nodeId);
    if (used + size > room) {
      pages.push({ nodes: [], loads: [], left: [] });
      used = 0;
    }
    put(pages.at(-1)!);
    used += size;
  };
  for (const summary of beat.nodes) place(summary, summary.id, (p) => p.nodes.push(summary));
  for (const load of beat.loads ?? []) place(load, load[0], (p) => p.loads.push(load));
  for (const nodeId of beat.left ?? []) place(nodeId, nodeId, (p) => p.left.push(nodeId));
  const { echoes: _echoes, ...envelope } = empty;
  return pages.map((page, part) => ({
    ...envelope,
    nodes: page.nodes,
    ...(beat.loads ? { loads: page.loads } : {}),
    ...(beat.left ? { left: page.left } : {}),
    ...(part === 0 && beat.echoes ? { echoes: beat.echoes } : {}),
    part,
    parts: pages.length,
  }));
}
