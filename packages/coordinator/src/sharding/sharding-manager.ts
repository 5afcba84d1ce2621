/**
 * The coordinator's side of sharded models. Collects stage offers from node sessions, places spans with
 * `placeStages`, loads them (`stage.load`), and registers one pipeline per model as a node whose worker runs a
 * `TokenLoop` per job: the JobManager schedules onto it like onto any node, so clients cannot tell the difference.
 * The loop reports to the job machinery through its `JobSink`, directly.
 */
import {
  TesseraError,
  decodeActivationFrame,
  sha256Hex,
  type DecodedActivationFrame,
  type ShardOffer,
  type StageNodeMessage,
  type StreamPart,
} from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import { describeRanges, placeStages, DEFAULT_MS_PER_LAYER, DEFAULT_PATH_RTT_MS } from "../placement/index.js";
import type { NodeRegistry } from "../registry.js";
import type { JobSink } from "../workers/job-sink.js";
import { sessionMessenger } from "../sessions/session-messenger.js";
import type { NodeMessenger } from "../workers/node-messenger.js";
import type { Assignment, Worker } from "../workers/worker.js";
import type { ShardedModel, StageState } from "./sharded-model.js";
import { checkShardOffer, type OfferCheck } from "./offer-check.js";
import { chooseStagePath } from "./stage-path.js";
import { StageReplay } from "./stage-replay.js";
import { TokenLoop, type StageRecord, type TokenLoopHost } from "./token-loop.js";

/** A loaded stage as stage checks see it (a reference candidate). */
export interface HeldStage {
  nodeId: string;
  stageId: number;
  start: number;
  end: number;
}

/** A sharded model as the models list shows it (`ShardingManager.summaries`). */
export interface ShardedModelSummary {
  model: string;
  layers: number;
  /** Stages a request runs through now; null when the offering nodes cannot hold every layer. */
  stages: number | null;
  /** Nodes holding a span of it. */
  nodes: number;
  /** Every stage of that chain is loaded. */
  ready: boolean;
}

export interface ShardingOptions {
  registry: NodeRegistry;
  /** Where each pipeline reports on its jobs (the JobManager). */
  jobs: JobSink;
  clock: Clock;
  logger: Logger;
  /** How stage messages and frames reach the nodes (default: the sessions this coordinator holds). */
  messenger?: NodeMessenger;
  /**
   * Whether this coordinator places spans and runs the pipelines (default true). Of several replicas only one leads
   * (bus/stage-relay.ts); the others keep their nodes' offers and relay their stage traffic to the leader.
   */
  leading?: boolean;
  /** The id of the first stage this manager loads (default 1); replicas start far apart so their ids never meet on a node. */
  firstStageId?: number;
  /** Copies of every span placed up front (default 2; fewer when there are not enough nodes). */
  replicas?: number;
  /** How long a request waits for stages that are loading (default 30 s). */
  loadTimeoutMs?: number;
  /** Jobs a pipeline takes at once (default 8). */
  maxConcurrency?: number;
  /** Nodes no request is routed through (quarantined by stage checks or answer checks). */
  excluded?(nodeId: string): boolean;
  /** A request finished on one unchanged path (stage checks draw from it; trust/stage-checks.ts). */
  onRequestFinished?(request: { requestId: string; sha256: string; model: string; stages: StageRecord[] }): void;
}

export class ShardingManager {
  private readonly models = new Map<string, ShardedModel>();
  private readonly loops = new Map<string, TokenLoop>();
  private readonly replays = new Map<string, StageReplay>();
  /** The splits of pipelines another replica runs (it leads), by pipeline id, as its beats say them. */
  private readonly peerPipelines = new Map<string, ShardedModelSummary>();
  private nextStageId: number;
  private readonly replicas: number;
  private readonly loadTimeoutMs: number;
  private readonly transport: NodeMessenger;
  private leading: boolean;

  constructor(private readonly o: ShardingOptions) {
    this.replicas = o.replicas ?? 2;
    this.loadTimeoutMs = o.loadTimeoutMs ?? 30_000;
    this.transport = o.messenger ?? sessionMessenger(o.registry);
    this.leading = o.leading ?? true;
    this.nextStageId = o.firstStageId ?? 1;
  }

  /** Whether this coordinator places spans and runs the pipelines now. */
  get isLeading(): boolean {
    return this.leading;
  }

  /**
   * This coordinator starts or stops leading sharded models. Starting: every model someone offers is placed and its
   * pipeline registered. Stopping: the pipelines go (the jobs on them continue elsewhere, through the new leader) and
   * every stage no running request uses is unloaded; the offers stay, for the day it leads again.
   */
  setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.o.logger.info({ leading }, leading ? "leading sharded models: placing spans" : "no longer leading sharded models");
    for (const model of this.models.values()) {
      if (model.offers.size === 0) continue;
      if (leading) {
        this.ensurePipeline(model);
        this.place(model);
        continue;
      }
      this.retirePipeline(model);
      const inUse = this.stagesInUse();
      for (const [id, stage] of model.stages) {
        if (inUse.has(id)) continue;
        model.stages.delete(id);
        for (const w of stage.waiters.splice(0)) w.reject(new TesseraError("node_disconnected", "this coordinator stopped leading the model"));
        this.transport.send(stage.nodeId, { type: "stage.unload", stage_id: id });
      }
    }
  }

  /** The shards a node offers, as its last `stage.offer` said (what a replica's beat tells the others). */
  offersOf(nodeId: string): ShardOffer[] {
    const out: ShardOffer[] = [];
    for (const model of this.models.values()) {
      const offer = model.offers.get(nodeId);
      if (offer) out.push(offer);
    }
    return out;
  }

  /**
   * A node held by another replica offers these shards now (its replica's beat said so): the same as its own
   * `stage.offer`, except that an empty or shrunk list withdraws what it offered before.
   */
  setPeerOffers(nodeId: string, shards: ShardOffer[]): void {
    const now = new Set(shards.map((s) => s.sha256));
    if ([...this.models.values()].some((m) => m.offers.has(nodeId) && !now.has(m.sha256))) this.onNodeLost(nodeId);
    if (shards.length > 0) this.onOffer(nodeId, shards, false);
  }

  /** The model state by SHA-256 (tests and the bench read stages and costs from it). */
  model(sha256: string): ShardedModel | undefined {
    return this.models.get(sha256);
  }

  /**
   * Each sharded model someone offers, by its pipeline's node id (what the registry lists as serving it): over how
   * many stages a request runs now (the chain of loaded spans it would take, else of the spans placed and still
   * loading; null when the offering nodes cannot hold every layer), how many nodes hold a span, and whether the chain
   * is loaded. Read-only. On a replica that does not lead, the leader's pipelines as its beats say them.
   */
  summaries(): Map<string, ShardedModelSummary> {
    if (!this.leading) return new Map(this.peerPipelines);
    const out = new Map<string, ShardedModelSummary>();
    for (const model of this.models.values()) {
      if (model.offers.size === 0) continue;
      const placed = [...model.stages.values()];
      const loaded = chooseStagePath(placed.filter((s) => s.loaded), (id) => this.rtt(id), model.layerCount);
      const planned = loaded.ok ? loaded : chooseStagePath(placed, (id) => this.rtt(id), model.layerCount);
      out.set(model.pipelineId, {
        model: model.name,
        layers: model.layerCount,
        stages: planned.ok ? planned.stages.length : null,
        nodes: new Set(placed.map((s) => s.nodeId)).size,
        ready: loaded.ok,
      });
    }
    return out;
  }

  /** A pipeline the leading replica runs, with its split (undefined: gone), for this replica's models list. */
  setPeerPipeline(pipelineId: string, summary: ShardedModelSummary | undefined): void {
    if (summary) this.peerPipelines.set(pipelineId, summary);
    else this.peerPipelines.delete(pipelineId);
  }

  /** Live token loops (the bench reads their hop timings). */
  loop(requestId: string): TokenLoop | undefined {
    return this.loops.get(requestId);
  }

  onStageMessage(nodeId: string, message: StageNodeMessage): void {
    switch (message.type) {
      case "stage.offer":
        return this.onOffer(nodeId, message.shards, true);
      case "stage.loaded": {
        const stage = this.findStage(message.stage_id, nodeId);
        if (!stage) return;
        stage.loaded = true;
        stage.msPerLayer = message.ms_per_layer;
        for (const w of stage.waiters.splice(0)) w.resolve();
        this.o.logger.info({ node: nodeId.slice(0, 12), stage: stage.stageId, layers: `[${stage.start}, ${stage.end})` }, "stage loaded");
        return;
      }
      case "stage.tokenized":
        return this.loops.get(message.request_id)?.onTokenized(nodeId, message);
      case "stage.error": {
        if (message.request_id) {
          this.replays.get(message.request_id)?.onStageError(nodeId, message.code, message.message);
          return this.loops.get(message.request_id)?.onStageError(nodeId, message.code, message.message);
        }
        if (message.stage_id === undefined) return;
        const found = this.findStageWithModel(message.stage_id, nodeId);
        if (!found) return;
        this.o.logger.warn({ node: nodeId.slice(0, 12), stage: message.stage_id, code: message.code, message: message.message }, "stage load failed");
        found.model.stages.delete(message.stage_id);
        for (const w of found.stage.waiters.splice(0)) w.reject(new TesseraError("internal_error", message.message));
        return;
      }
    }
  }

  /** A binary frame from a node: the answer of one of its stages to a token loop. */
  onBinary(nodeId: string, data: Uint8Array): void {
    const receivedAt = performance.now();
    let frame: DecodedActivationFrame;
    try {
      frame = decodeActivationFrame(data);
    } catch (err) {
      this.o.logger.warn({ node: nodeId.slice(0, 12), err: (err as Error).message }, "node sent a bad activation frame; ignored");
      return;
    }
    const loop = this.loops.get(frame.requestId);
    if (loop) return loop.onFrame(nodeId, data, frame, receivedAt);
    this.replays.get(frame.requestId)?.onFrame(nodeId, data, frame);
  }

  /** Loaded stages of the model with this hash holding exactly [start, end), on nodes with a session. */
  heldSpans(sha256: string, start: number, end: number): HeldStage[] {
    const model = this.models.get(sha256);
    if (!model) return [];
    return [...model.stages.values()]
      .filter((s) => s.loaded && s.start === start && s.end === end && this.transport.reachable(s.nodeId))
      .map((s) => ({ nodeId: s.nodeId, stageId: s.stageId, start: s.start, end: s.end }));
  }

  /** Nodes offering the file with this hash, with a session. */
  offeringNodes(sha256: string): string[] {
    return [...(this.models.get(sha256)?.offers.keys() ?? [])].filter((id) => this.transport.reachable(id));
  }

  /**
   * Loads [start, end) of the file on `nodeId` for a stage check's replay (or finds it loaded there). The stage is a
   * loaded stage like any other: paths may use it, and the next placement unloads it unless a request uses it.
   */
  async loadSpan(sha256: string, start: number, end: number, nodeId: string): Promise<HeldStage> {
    const model = this.models.get(sha256);
    if (!model?.offers.has(nodeId)) throw new TesseraError("not_found", `node ${nodeId.slice(0, 12)} does not offer the file ${sha256.slice(0, 12)}`);
    const stage = [...model.stages.values()].find((s) => s.nodeId === nodeId && s.start === start && s.end === end) ?? this.load(model, nodeId, start, end);
    await this.whenLoaded(stage);
    return { nodeId: stage.nodeId, stageId: stage.stageId, start: stage.start, end: stage.end };
  }

  /** Replays saved inputs of a span on a loaded stage (a stage check); see `StageReplay`. */
  replay(stage: HeldStage, frames: readonly Uint8Array[]): { requestId: string; answer: Promise<Uint8Array[]>; cancel(): void } {
    const transport = this.transport;
    let replay: StageReplay | undefined;
    try {
      // The id is registered before the first frame goes out, so an answer that comes back at once is routed.
      replay = new StageReplay(stage.nodeId, stage.stageId, frames, transport, (r) => this.replays.delete(r.requestId), (r) => this.replays.set(r.requestId, r));
    } catch (err) {
      return { requestId: "", answer: Promise.reject(err as Error), cancel: () => undefined };
    }
    const r = replay;
    return { requestId: r.requestId, answer: r.answer, cancel: () => r.cancel() };
  }

  /**
   * A node's session dropped, or it is draining: its offers and stages are gone; running requests re-route the spans
   * it held. A node that takes work again offers its file again (`stage.offer`), which places spans anew.
   */
  onNodeLost(nodeId: string): void {
    for (const model of this.models.values()) {
      const had = model.offers.delete(nodeId);
      for (const [id, stage] of model.stages) {
        if (stage.nodeId !== nodeId) continue;
        model.stages.delete(id);
        for (const w of stage.waiters.splice(0)) w.reject(new TesseraError("node_disconnected", "stage node lost while loading"));
      }
      if (!had || !this.leading) continue;
      if (model.offers.size === 0) this.retirePipeline(model);
      else if (!chooseStagePath([...model.stages.values()], () => 0, model.layerCount).ok) this.place(model);
    }
    for (const loop of this.loops.values()) loop.onNodeLost(nodeId);
    for (const replay of [...this.replays.values()]) replay.onNodeLost(nodeId);
  }

  /** `fromNode`: the node's own `stage.offer` on its session here (not a peer replica's beat), so a refusal is told to it. */
  private onOffer(nodeId: string, shards: ShardOffer[], fromNode: boolean): void {
    for (const offer of shards) {
      let model = this.models.get(offer.sha256);
      const check = checkShardOffer(offer, model && { layerCount: model.layerCount, bytesPerLayer: model.fileBytesPerLayer });
      if (!check.ok) {
        this.refuseOffer(nodeId, offer, check, fromNode);
        continue;
      }
      if (!model) {
        model = {
          sha256: offer.sha256,
          name: offer.model,
          layerCount: offer.layer_count,
          fileBytesPerLayer: offer.bytes_per_layer,
          offers: new Map(),
          stages: new Map(),
          version: 0,
          pipelineId: sha256Hex(`tessera-pipeline:${offer.sha256}`),
          vocab: undefined,
          unplaced: undefined,
        };
        this.models.set(offer.sha256, model);
      }
      model.offers.set(nodeId, offer);
      if (!this.leading) continue;
      this.ensurePipeline(model);
      this.place(model);
    }
  }

  /**
   * An offer that cannot be true is not used (the node's earlier offer of the file, if any, stands); the log says why,
   * and so does `offer.refused` to the node whose own offer it was, so that its operator sees it. It goes down the
   * session the offer came on (held here), not through the messenger: it is no stage traffic for a leader to route.
   * An offer heard from a peer replica's beat is only logged: the replica holding the node's session checked it.
   */
  private refuseOffer(nodeId: string, offer: ShardOffer, check: Extract<OfferCheck, { ok: false }>, fromNode: boolean): void {
    const session = fromNode ? this.o.registry.get(nodeId)?.session : undefined;
    session?.send({ type: "offer.refused", model: offer.model, sha256: offer.sha256, code: check.code, param: check.param, message: check.message });
    const told = session !== undefined;
    this.o.logger.warn({ node: nodeId.slice(0, 12), model: offer.model, code: check.code, param: check.param, reason: check.message, told }, "stage offer refused");
  }

  /**
   * Places spans over the offering nodes and loads what is new; unloads stages no request uses any more. A node's
   * memory is divided by what a layer takes on its own backend (its offer's span_bytes_per_layer, else the file's
   * bytes), and its speed is what its offer measured on a few middle layers of its backend, else what its loaded
   * stages measured (an older daemon's offer), else the default. The offer's figure comes first because a loaded
   * stage's per-layer time also charges its layers with the embedding lookup and, on the last stage, the output head
   * (on the 50 M test model 16 M of 40 M weights: its daemon measured 1.31 ms/layer holding all 8 layers, 0.27 on
   * middle layers), which would make whoever holds the last span look slow at the next placement.
   */
  private place(model: ShardedModel): void {
    const measured = new Map<string, number>();
    for (const s of model.stages.values()) if (s.loaded) measured.set(s.nodeId, s.msPerLayer);
    const nodes = [...model.offers].map(([id, offer]) => ({
      id,
      freeMemoryBytes: offer.free_memory_bytes,
      bytesPerLayer: offer.span_bytes_per_layer ?? offer.bytes_per_layer,
      msPerLayer: offer.ms_per_layer ?? measured.get(id) ?? DEFAULT_MS_PER_LAYER,
      rttMs: this.rtt(id),
    }));
    const placement = placeStages({ layerCount: model.layerCount, nodes, replicas: this.replicas });
    model.version++;
    model.unplaced = placement.ok ? undefined : placement.missingLayers;
    if (!placement.ok) {
      this.o.logger.warn({ model: model.name, missing: describeRanges(placement.missingLayers) }, "sharded model cannot be fully placed");
      return;
    }
    const keep = new Set<number>();
    for (const a of placement.stages) {
      const existing = [...model.stages.values()].find((s) => s.nodeId === a.nodeId && s.start === a.start && s.end === a.end);
      keep.add(existing ? existing.stageId : this.load(model, a.nodeId, a.start, a.end).stageId);
    }
    const inUse = this.stagesInUse();
    for (const [id, stage] of model.stages) {
      if (keep.has(id) || inUse.has(id) || !stage.loaded) continue;
      model.stages.delete(id);
      this.transport.send(stage.nodeId, { type: "stage.unload", stage_id: id });
    }
    // Each node's span, and the per-layer time and memory it was sized by (what an operator checks a split against).
    const sizedBy = new Map(nodes.map((n) => [n.id, `${n.msPerLayer.toPrecision(3)} ms/layer, ${(n.bytesPerLayer / 2 ** 20).toFixed(1)} MiB/layer`]));
    const spans = placement.stages.map((s) => `${s.nodeId.slice(0, 8)}[${s.start},${s.end}) (${sizedBy.get(s.nodeId)})`).join(" ");
    this.o.logger.info({ model: model.name, version: model.version, spans }, "sharded model placed");
  }

  private load(model: ShardedModel, nodeId: string, start: number, end: number): StageState {
    // Path choice uses the offer's measured time until stage.loaded and the frames say more.
    const msPerLayer = model.offers.get(nodeId)?.ms_per_layer ?? DEFAULT_MS_PER_LAYER;
    const stage: StageState = { stageId: this.nextStageId++, nodeId, start, end, msPerLayer, loaded: false, waiters: [] };
    model.stages.set(stage.stageId, stage);
    this.transport.send(nodeId, { type: "stage.load", stage_id: stage.stageId, sha256: model.sha256, start, end });
    return stage;
  }

  private stagesInUse(): Set<number> {
    const ids = new Set<number>();
    for (const loop of this.loops.values()) for (const id of loop.stageIds()) ids.add(id);
    for (const replay of this.replays.values()) ids.add(replay.stageId);
    return ids;
  }

  /** Waits for the loaded stages to cover every layer; fails fast when nothing that could cover them is loading. */
  private async pathFor(model: ShardedModel, dead: ReadonlySet<string>): Promise<StageState[]> {
    const exclude = this.withExcluded(model, dead);
    const deadline = this.o.clock.now() + this.loadTimeoutMs;
    for (;;) {
      const loaded = [...model.stages.values()].filter((s) => s.loaded);
      const path = chooseStagePath(loaded, (id) => this.rtt(id), model.layerCount, exclude);
      if (path.ok) return path.stages as StageState[];
      const loading = [...model.stages.values()].filter((s) => !s.loaded && !exclude.has(s.nodeId));
      const couldCover = chooseStagePath([...loaded, ...loading], () => 0, model.layerCount, exclude);
      if (!couldCover.ok || loading.length === 0 || this.o.clock.now() > deadline) {
        const why = model.unplaced && !chooseStagePath(loaded, () => 0, model.layerCount).ok
          ? `${describeRanges(model.unplaced)} cannot be held by the ${model.offers.size} node(s) offering it (not enough memory)`
          : path.message;
        throw new TesseraError("no_capacity", `sharded model "${model.name}": ${why}`);
      }
      await Promise.race(loading.map((s) => this.whenLoaded(s).catch(() => undefined)));
    }
  }

  private async replicaFor(model: ShardedModel, start: number, end: number, dead: ReadonlySet<string>): Promise<StageState> {
    const exclude = this.withExcluded(model, dead);
    const same = [...model.stages.values()].filter((s) => s.start === start && s.end === end && !exclude.has(s.nodeId));
    const ready = same.find((s) => s.loaded) ?? same[0];
    if (ready) {
      await this.whenLoaded(ready);
      return ready;
    }
    // No replica of this exact span: load it on the offering node with the fewest layers already placed.
    const candidates = [...model.offers.keys()].filter((id) => !exclude.has(id) && this.transport.reachable(id));
    if (candidates.length === 0) {
      throw new TesseraError("no_capacity", `sharded model "${model.name}": ${describeRanges([{ start, end }])} lost their stage and no other node holds the file`);
    }
    const layersOn = (id: string) => [...model.stages.values()].filter((s) => s.nodeId === id).reduce((n, s) => n + s.end - s.start, 0);
    candidates.sort((a, b) => layersOn(a) - layersOn(b) || a.localeCompare(b));
    const stage = this.load(model, candidates[0]!, start, end);
    await this.whenLoaded(stage);
    return stage;
  }

  /** `dead` plus the offering nodes the owner's trust excludes (quarantined). */
  private withExcluded(model: ShardedModel, dead: ReadonlySet<string>): ReadonlySet<string> {
    const excluded = this.o.excluded;
    if (!excluded) return dead;
    const out = new Set(dead);
    for (const id of model.offers.keys()) if (excluded(id)) out.add(id);
    for (const s of model.stages.values()) if (excluded(s.nodeId)) out.add(s.nodeId);
    return out;
  }

  private whenLoaded(stage: StageState): Promise<void> {
    if (stage.loaded) return Promise.resolve();
    return new Promise((resolve, reject) => stage.waiters.push({ resolve, reject }));
  }

  /** Starts the token loop of a job assigned to a pipeline. */
  private startJob(model: ShardedModel, job: Assignment): void {
    const jobs = this.o.jobs;
    const workerId = model.pipelineId;
    const { transport } = this;
    const host: TokenLoopHost = {
      send: (nodeId, message) => transport.send(nodeId, message),
      sendBinary: (nodeId, data) => transport.sendBinary(nodeId, data),
      rttMs: (nodeId) => this.rtt(nodeId),
      pathFor: (m, exclude) => this.pathFor(m, exclude),
      replicaFor: (m, start, end, exclude) => this.replicaFor(m, start, end, exclude),
      emit: (part: StreamPart) => jobs.part(workerId, job.job_id, part),
      accept: () => jobs.accepted(workerId, job.job_id),
      abort: (code, message) => jobs.failed(workerId, job.job_id, code, message),
      now: () => performance.now(),
      log: (message, fields) => this.o.logger.info(fields ?? {}, message),
      finished: (stages) => this.o.onRequestFinished?.({ requestId: job.job_id, sha256: model.sha256, model: model.name, stages }),
    };
    const loop = new TokenLoop(job.job_id, model, job, host);
    this.loops.set(job.job_id, loop);
    void loop.run().finally(() => {
      if (this.loops.get(job.job_id) === loop) this.loops.delete(job.job_id);
    });
  }

  /** Registers the model's pipeline as a node serving it, with a worker that runs each job as a token loop. */
  private ensurePipeline(model: ShardedModel): void {
    const { registry } = this.o;
    const existing = registry.get(model.pipelineId);
    if (existing?.worker) return;
    registry.register({
      type: "register",
      public_key: model.pipelineId,
      version: "pipeline",
      hardware: { cpu_cores: 1, ram_mb: 0, gpus: [] },
      models: [{ id: model.name, backend: "pipeline" }],
      max_concurrency: this.o.maxConcurrency ?? 8,
    }, model.pipelineId);
    // The pipeline's round trip is its stages' own, paid inside every step: the scheduler adds none for it.
    const worker: Worker = {
      id: model.pipelineId,
      assign: (job) => this.startJob(model, job),
      cancel: (jobId) => this.loops.get(jobId)?.cancel(),
      rtt: () => 0,
      close: () => undefined,
    };
    registry.attach(model.pipelineId, worker);
    this.o.logger.info({ model: model.name, sha256: model.sha256.slice(0, 12), node: model.pipelineId.slice(0, 12) }, "sharded model available");
  }

  private retirePipeline(model: ShardedModel): void {
    const record = this.o.registry.get(model.pipelineId);
    if (record?.worker) this.o.registry.detach(model.pipelineId, record.worker, "no node offers its layers");
  }

  /** Measured where the node's session is here; the prior for a node held by another replica. */
  private rtt(nodeId: string): number {
    return this.transport.rttMs(nodeId) ?? DEFAULT_PATH_RTT_MS;
  }

  private findStage(stageId: number, nodeId: string): StageState | undefined {
    return this.findStageWithModel(stageId, nodeId)?.stage;
  }

  private findStageWithModel(stageId: number, nodeId: string): { model: ShardedModel; stage: StageState } | undefined {
    for (const model of this.models.values()) {
      const stage = model.stages.get(stageId);
      if (stage && stage.nodeId === nodeId) return { model, stage };
    }
    return undefined;
  }
}
