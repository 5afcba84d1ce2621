import type { DrainReason, GpuStats, Hardware, NodeHeartbeat, NodeRegister, ServedModel } from "@tessera/protocol";
import type { Clock } from "./clock.js";
import type { NodeSession } from "./workers/node-session.js";
import type { Worker } from "./workers/worker.js";

/**
 * The coordinator's live view of nodes: the routing source of truth (the store mirrors it for status queries and
 * restarts). A node is online while it is heard from (heartbeats, or pongs and parts on its session) and its worker
 * has not dropped; it is routable when it is online, has a worker, and is not draining.
 */
export interface LiveNode {
  id: string;
  /** The operator the node counts under (its delegation's operator key, or its own id). */
  operatorId: string;
  /** When a successor key took this one over (epoch ms); evicted once the rotation grace ends. */
  retiredAt: number | undefined;
  version: string;
  hardware: Hardware;
  models: ServedModel[];
  maxConcurrency: number;
  gpus: GpuStats[];
  loadedModels: string[];
  lastSeenAt: number;
  online: boolean;
  draining: boolean;
  /**
   * Why it is draining, as its session's `draining` message said (already narrowed to the known reasons); undefined
   * while it serves. A heartbeat that says draining keeps it; one that does not, or a new session, clears it.
   */
  drainReason?: DrainReason | undefined;
  /** What jobs are assigned to: the node's session here, or a pipeline for a sharded model (workers/worker.ts). */
  worker: Worker | undefined;
  /** The node's session on this replica, for everything that is not a job (checks, receipts, commands, stages). */
  session: NodeSession | undefined;
  /** Jobs this coordinator has pushed to the node and not yet seen finish. */
  activeJobs: Set<string>;
  /**
   * Jobs other replicas run on the node, as the replica holding its session counted them in its last beat, less this
   * replica's own (bus/replica-link.ts); 0 for a node held here. The scheduler counts them as load.
   */
  jobsElsewhere: number;
  /** When and with what state the node's last heartbeat was written to the store. */
  storedHeartbeatAt: number;
  storedHeartbeatState: string;
  /** When the silence sweep pinged the node's session, asking before marking it offline; cleared when it speaks. */
  probedAt?: number | undefined;
}

/**
 * How long a silent node with a session has to answer the sweep's ping before it is marked offline. A live daemon
 * answers pings at once (daemon.ts); the grace covers a busy link and the sweep's own 1 s tick.
 */
export const SILENCE_PROBE_GRACE_MS = 2_000;

export interface RegistryEvents {
  onOffline(nodeId: string, reason: string): void;
  onOnline(nodeId: string): void;
}

export class NodeRegistry {
  private readonly nodes = new Map<string, LiveNode>();
  /** Every model any node has ever announced: distinguishes `model_not_found` from `no_capacity`. */
  private readonly everServed = new Set<string>();
  /** When each model was first announced to this coordinator (epoch ms): OpenAI's `created` for it. */
  private readonly firstServedAt = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly offlineAfterMs: number,
    private readonly events: RegistryEvents,
  ) {}

  /** Admission happened before this: only admitted nodes are ever in the registry. */
  register(reg: NodeRegister, operatorId: string): LiveNode {
    const existing = this.nodes.get(reg.public_key);
    const record: LiveNode = {
      id: reg.public_key,
      operatorId,
      retiredAt: existing?.retiredAt,
      version: reg.version,
      hardware: reg.hardware,
      models: reg.models,
      maxConcurrency: reg.max_concurrency,
      gpus: existing?.gpus ?? [],
      loadedModels: existing?.loadedModels ?? [],
      lastSeenAt: this.clock.now(),
      online: existing?.online ?? false,
      draining: false,
      drainReason: undefined,
      worker: existing?.worker,
      session: existing?.session,
      activeJobs: existing?.activeJobs ?? new Set(),
      jobsElsewhere: existing?.jobsElsewhere ?? 0,
      storedHeartbeatAt: 0,
      storedHeartbeatState: "",
    };
    this.nodes.set(record.id, record);
    for (const m of reg.models) this.noteServed(m.id, this.clock.now());
    this.markOnline(record);
    return record;
  }

  /** Restores a node known from the store (after a coordinator restart); it stays offline until it speaks. */
  restore(record: Omit<LiveNode, "online" | "worker" | "session" | "activeJobs" | "jobsElsewhere" | "draining" | "storedHeartbeatAt" | "storedHeartbeatState">): void {
    if (this.nodes.has(record.id)) return;
    this.nodes.set(record.id, { ...record, online: false, draining: false, worker: undefined, session: undefined, activeJobs: new Set(), jobsElsewhere: 0, storedHeartbeatAt: 0, storedHeartbeatState: "" });
    for (const m of record.models) this.noteServed(m.id, record.lastSeenAt || this.clock.now());
  }

  heartbeat(nodeId: string, hb: NodeHeartbeat): LiveNode | undefined {
    const record = this.nodes.get(nodeId);
    if (!record) return undefined;
    record.gpus = hb.gpus;
    record.loadedModels = hb.loaded_models;
    record.maxConcurrency = hb.max_concurrency;
    record.draining = hb.draining;
    // Draining said only by a heartbeat (no session message, or an older daemon): the reason is not known.
    record.drainReason = hb.draining ? (record.drainReason ?? "unspecified") : undefined;
    if (hb.models) {
      record.models = hb.models;
      for (const m of hb.models) this.noteServed(m.id, this.clock.now());
    }
    record.lastSeenAt = this.clock.now();
    record.probedAt = undefined;
    this.markOnline(record);
    return record;
  }

  /**
   * The node's worker is here (its session opened, or a pipeline became available): it is online and takes jobs.
   * `session` is the node's session on this replica, when it has one (a pipeline has none).
   */
  attach(nodeId: string, worker: Worker, session?: NodeSession): LiveNode | undefined {
    const record = this.nodes.get(nodeId);
    if (!record) return undefined;
    const previous = record.worker;
    record.worker = worker;
    record.session = session;
    record.lastSeenAt = this.clock.now();
    record.draining = false;
    record.drainReason = undefined;
    if (previous && previous !== worker) previous.close(4000, "replaced by a newer session");
    this.markOnline(record);
    return record;
  }

  /** A worker dropped (its session closed): the node is offline at once. Only the worker that is current counts. */
  detach(nodeId: string, worker: Worker, reason: string): void {
    const record = this.nodes.get(nodeId);
    if (!record || record.worker !== worker) return;
    record.worker = undefined;
    record.session = undefined;
    this.markOffline(record, reason);
  }

  /**
   * The node spoke through its current worker (a pong, a job part): it is alive even when its HTTP heartbeats are
   * late, so the silence sweep must not close a healthy session. A stale worker proves nothing.
   */
  touch(nodeId: string, worker: Worker): void {
    const record = this.nodes.get(nodeId);
    if (record && record.worker === worker && record.online) {
      record.lastSeenAt = this.clock.now();
      record.probedAt = undefined;
    }
  }

  /**
   * Takes a node off the network here (its operator was banned, its key's rotation grace ended): its session is
   * closed, its jobs move on through the usual offline path, and it must register again, which admission refuses.
   */
  evict(nodeId: string, reason: string): boolean {
    const record = this.nodes.get(nodeId);
    if (!record) return false;
    const worker = record.worker;
    record.worker = undefined;
    record.session = undefined;
    this.markOffline(record, reason);
    this.nodes.delete(nodeId);
    worker?.close(4003, reason.slice(0, 120));
    return true;
  }

  /** A successor key registered with this key's signed hand-over. */
  markRetired(nodeId: string, at: number): void {
    const record = this.nodes.get(nodeId);
    if (record) record.retiredAt = at;
  }

  /** The node said it is draining, and why (`unspecified` when it did not say or said something unknown). */
  setDraining(nodeId: string, reason: DrainReason = "unspecified"): void {
    const record = this.nodes.get(nodeId);
    if (!record) return;
    record.draining = true;
    record.drainReason = reason;
  }

  /**
   * Marks silent nodes offline; returns their ids. Called on a timer and by tests with a moved clock. A silent node
   * that has a session here is asked first: the sweep pings it, and marks it only when the ping too goes unanswered
   * for `SILENCE_PROBE_GRACE_MS` (any message from the node answers). Late HTTP heartbeats alone (a node behind a
   * slow proxy, a coordinator that fell behind on its HTTP queue) never take a node with a live session off the
   * network: the suspicion step of SWIM-style failure detectors, asked directly instead of through peers.
   */
  sweep(): string[] {
    const now = this.clock.now();
    const cutoff = now - this.offlineAfterMs;
    const marked: string[] = [];
    for (const record of this.nodes.values()) {
      if (record.online && record.lastSeenAt < cutoff) {
        if (record.session) {
          if (record.probedAt === undefined) {
            record.probedAt = now;
            record.session.send({ type: "ping", sent_at: now });
            continue;
          }
          if (now - record.probedAt < SILENCE_PROBE_GRACE_MS) continue;
        }
        record.probedAt = undefined;
        record.worker?.close(4001, "no heartbeat");
        record.worker = undefined;
        record.session = undefined;
        this.markOffline(record, `no heartbeat for ${Math.round(this.offlineAfterMs / 1000)} s`);
        marked.push(record.id);
      }
    }
    return marked;
  }

  get(nodeId: string): LiveNode | undefined {
    return this.nodes.get(nodeId);
  }

  all(): IterableIterator<LiveNode> {
    return this.nodes.values();
  }

  /** When a model was first announced here (epoch ms), or undefined for one never announced. */
  firstServed(model: string): number | undefined {
    return this.firstServedAt.get(model);
  }

  /** Some node that announces the model is online (busy or draining ones included: those are worth waiting for). */
  servesOnline(model: string): boolean {
    for (const record of this.nodes.values()) {
      if (record.online && record.models.some((m) => m.id === model)) return true;
    }
    return false;
  }

  /** Every model any node has announced (online or not): a request for one of these waits for capacity. */
  knownModels(): ReadonlySet<string> {
    return this.everServed;
  }

  /** The largest file size any node reports for the model (prices by size class), undefined when none says. */
  modelSizeBytes(model: string): number | undefined {
    let size: number | undefined;
    for (const record of this.nodes.values()) {
      const bytes = record.models.find((m) => m.id === model)?.size_bytes;
      if (bytes !== undefined && (size === undefined || bytes > size)) size = bytes;
    }
    return size;
  }

  onlineModels(): Map<string, LiveNode[]> {
    const byModel = new Map<string, LiveNode[]>();
    for (const record of this.nodes.values()) {
      if (!record.online) continue;
      for (const m of record.models) {
        const list = byModel.get(m.id) ?? [];
        list.push(record);
        byModel.set(m.id, list);
      }
    }
    return byModel;
  }

  private noteServed(model: string, at: number): void {
    this.everServed.add(model);
    const first = this.firstServedAt.get(model);
    if (first === undefined || at < first) this.firstServedAt.set(model, at);
  }

  private markOnline(record: LiveNode): void {
    if (record.online) return;
    record.online = true;
    this.events.onOnline(record.id);
  }

  private markOffline(record: LiveNode, reason: string): void {
    if (!record.online) return;
    record.online = false;
    this.events.onOffline(record.id, reason);
  }
}
