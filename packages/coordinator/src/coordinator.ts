import { randomInt } from "node:crypto";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { AfterIoQueue, NonceCache } from "@tessera/protocol";
import { installShutdownGate } from "./http/shutdown-gate.js";
import { wasmSchnorrVerifier } from "@tessera/protocol/wasm-schnorr";
import { buildApp } from "./app.js";
import { type Clock, systemClock } from "./clock.js";
import type { CoordinatorConfig } from "./config.js";
import type { CoordinatorContext } from "./context.js";
import { JobManager } from "./jobs/job-manager.js";
import { DEFAULT_PROGRESS_LIMITS } from "./jobs/progress-deadline.js";
import { SchedulerChooser } from "./jobs/scheduler-chooser.js";
import { SpeedMetrics } from "./jobs/speed-metrics.js";
import { SpeedWrites } from "./jobs/speed-writes.js";
import { NodeStanding } from "./trust/node-standing.js";
import { SpotChecks } from "./trust/spot-checks.js";
import { StageChecks } from "./trust/stage-checks.js";
import { Canaries } from "./trust/canaries.js";
import { speedSamplesOf } from "./trust/speed-samples.js";
import { createLogger, type Logger } from "./logger.js";
import { CoordinatorMetrics } from "./metrics.js";
import { RateLimiter } from "./rate-limiter.js";
import { AuthThrottle } from "./auth-throttle.js";
import { PendingWrites } from "./pending-writes.js";
import { NodeRegistry } from "./registry.js";
import { SessionHub } from "./sessions/session-hub.js";
import { ShardingManager } from "./sharding/index.js";
import { Admission } from "./trust/admission.js";
import { AdmissionWatch } from "./trust/admission-watch.js";
import { ReceiptSignatures } from "./payments/receipt-signatures.js";
import { ensurePrivateDir, openStore } from "./store/index.js";
import { JobBilling, embeddingReplicaOf } from "./payments/job-billing.js";
import { EarningsSweep } from "./payments/earnings-sweep.js";
import { FREE, PriceTable } from "./payments/prices.js";
import { loadOrCreatePlatformKey } from "./payments/platform-key.js";
import { SettlementWorker } from "./payments/settlement-worker.js";
import { configuredChains } from "./payments/configured-chains.js";
import { EmbeddingRequests } from "./embeddings/embedding-requests.js";
import type { Store, StoreLog, StoreOptions } from "./store/types.js";
import { loadOrCreateReplicaId } from "./replicas/replica-id.js";
import { REPLICA_LEASE_MS, ReplicaLeaseHolder } from "./replicas/replica-lease.js";
import { SharedNonces } from "./replicas/shared-nonces.js";
import { connectBus } from "./bus/connect-bus.js";
import { countedBus } from "./bus/counted-bus.js";
import { ReplicaLink } from "./bus/replica-link.js";
import { SessionRelay } from "./bus/session-relay.js";
import { ShardingLeader } from "./bus/sharding-leader.js";
import { sessionMessenger } from "./sessions/session-messenger.js";

export interface CoordinatorDeps {
  clock?: Clock;
  logger?: Logger;
  store?: Store;
}

export interface Coordinator {
  ctx: CoordinatorContext;
  app: FastifyInstance;
  hub: SessionHub;
  /** Evicts nodes whose operator was banned (polled from the store by `tick`; tests call `poll()`). */
  admissionWatch: AdmissionWatch;
  /** Releases held earnings after the hold and forfeits a quarantined node's (run every minute; tests call `run()`). */
  earnings: EarningsSweep;
  /** Pays available earnings on chain (started by `startCoordinator` when a chain is configured). */
  settlement: SettlementWorker;
  /** This replica's id and lease in the shared store (replicas/design.md); tests call `renew()` and `sweepDeadReplicas()`. */
  replica: ReplicaLeaseHolder;
  /** Runs deadlines, the offline sweep, and the lease's and nonces' chores when due, once (the timer does this every second). */
  tick(): void;
  /**
   * The first step of a shutdown, alone: from now on every new HTTP request gets 503 `shutting_down` with
   * `Retry-After`, while jobs already running go on (`tessera up` calls it before draining its node).
   */
  stopAccepting(): void;
  /**
   * Shuts down in an order that leaves nothing writing to a closed store: stop accepting; fail every unfinished job
   * with `shutting_down` (each stream gets that as its final event, each waiting request its 503) and wait for the
   * responses in flight; close the node sessions and wait for their close handlers; close HTTP; flush the pending
   * job and node writes; close the store. Idempotent.
   */
  close(): Promise<void>;
}

export interface RunningCoordinator extends Coordinator {
  url: string;
  port: number;
}

const TICK_MS = 1_000;
/** A reference that has not scored an answer by then is passed over: the check is abandoned, nobody is judged. */
const CHECK_TIMEOUT_MS = 60_000;
const EXPIRY_SWEEP_MS = 60_000;
/** Held earnings become available within this long of their hold's end. */
const EARNINGS_SWEEP_MS = 10_000;
/** How long a shutdown waits for the answers to requests in flight before it cuts their connections. */
const IN_FLIGHT_GRACE_MS = 5_000;
const SHUTDOWN_MESSAGE = "the coordinator is shutting down; retry the request";

/**
 * Where this config's store lives: SQLite in the data dir unless `--db` names PostgreSQL; the content keys in
 * `<data dir>/content-keys` either way (they must never be in the database). The data dir is made 0700; a looser
 * one is tightened and told to `log` (default: a warning in a coordinator log made from the config).
 */
export function storeOptionsForConfig(config: CoordinatorConfig, log?: StoreLog): StoreOptions {
  let logger: Logger | undefined;
  const warn: StoreLog = log ?? ((fields, message) => (logger ??= createLogger(config.logLevel, { format: config.logFormat })).warn(fields, message));
  ensurePrivateDir(config.dataDir, warn);
  const keyDir = join(config.dataDir, "content-keys");
  if (config.dbUrl) return { postgresUrl: config.dbUrl, keyDir, log: warn };
  return { sqlitePath: join(config.dataDir, "coordinator.db"), keyDir, log: warn };
}

/** Wires store, registry, job manager, HTTP routes and the session hub. Does not listen and starts no timers. */
export async function createCoordinator(config: CoordinatorConfig, deps: CoordinatorDeps = {}): Promise<Coordinator> {
  let closing: Promise<void> | undefined;
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(config.logLevel, { format: config.logFormat });
  const replicaId = config.replicaId ?? loadOrCreateReplicaId(config.dataDir);
  const opened = deps.store ?? (await openStore(storeOptionsForConfig(config)));
  const writes = new PendingWrites();
  const store = writes.wrap(opened);
  let bus: Awaited<ReturnType<typeof connectBus>> | undefined;
  try {
    bus = config.busUrl ? await connectBus(config.busUrl, replicaId, store, logger) : undefined;
  } catch (err) {
    if (!deps.store) await opened.close();
    throw err;
  }
  let billingForTakeOver: JobBilling | undefined;
  const replica = new ReplicaLeaseHolder({
    store,
    clock,
    logger,
    id: replicaId,
    address: `${config.host}:${config.port}`,
    jobTimeoutMs: config.jobTimeoutS * 1000,
    onTakenOver: (jobIds) => void refundTakenOver(jobIds),
    takeOverAtOnce: store.dialect === "sqlite",
  });
  // Before anything touches jobs: start-up recovery ends this replica's own unfinished jobs, so it must never run
  // while another live process holds the same id.
  try {
    await replica.acquire();
  } catch (err) {
    await bus?.bus.close();
    if (!deps.store) await opened.close();
    throw err;
  }
  const sharedNonces = store.dialect === "postgres" ? new SharedNonces(store, clock, logger) : undefined;
  let jobs!: JobManager;
  let link: ReplicaLink | undefined;
  let relay: SessionRelay | undefined;
  let leader: ShardingLeader | undefined;
  let sharding: ShardingManager | undefined;
  let embeddings: EmbeddingRequests | undefined;
  const registry = new NodeRegistry(clock, config.offlineAfterS * 1000, {
    onOffline(nodeId, reason) {
      logger.info({ node: nodeId.slice(0, 12), reason }, "node offline");
      prometheus.nodesMarkedOffline.inc({ reason: reason.startsWith("no heartbeat") ? "silent" : "session_closed" });
      // A node shown through another replica is that replica's to record; its jobs here (and, for a node held here, the
      // other replicas' jobs on it) continue elsewhere.
      if (!link?.isRemote(nodeId)) store.setNodeStatus(nodeId, "offline", new Date(clock.now()), replicaId).catch((err: unknown) => logger.error({ err }, "could not store node status"));
      (link?.sessionSink ?? jobs).lost(nodeId, reason);
      embeddings?.onNodeLost(nodeId, reason);
      (relay ?? sharding)?.onNodeLost(nodeId);
    },
    onOnline(nodeId) {
      if (link?.isRemote(nodeId)) return;
      store.setNodeStatus(nodeId, "online", new Date(clock.now()), replicaId).catch((err: unknown) => logger.error({ err }, "could not store node status"));
    },
  });
  const prometheus = new CoordinatorMetrics(registry, () => ({ active: jobs.activeCount, pending: jobs.pendingCount }));
  // What this replica says and hears on the bus is counted in its metrics.
  const replicaBus = bus ? { bus: countedBus(bus.bus, prometheus), cluster: bus.cluster } : undefined;
  // With a bus, a node held by another replica is reached through it (bus/session-relay.ts); the answers it waits for
  // come back to this replica's sharding manager, spot checks and embedding requests.
  relay = replicaBus
    ? new SessionRelay({
        ...replicaBus,
        replicaId,
        registry,
        clock,
        logger,
        intake: {
          stages: {
            onStageMessage: (nodeId, message) => shards.onStageMessage(nodeId, message),
            onBinary: (nodeId, data) => shards.onBinary(nodeId, data),
            onNodeLost: (nodeId) => shards.onNodeLost(nodeId),
          },
          checks: { onMessage: (nodeId, message) => checks.onMessage(nodeId, message) },
          embeddings: { onMessage: (nodeId, message) => embeddings?.onMessage(nodeId, message), onNodeLost: (nodeId, reason) => embeddings?.onNodeLost(nodeId, reason) },
        },
        onLocalOffer: () => link?.beat(),
      })
    : undefined;
  const messenger = relay ?? sessionMessenger(registry);
  const speed = new SpeedMetrics();
  const speedWrites = new SpeedWrites({ store, clock, logger });
  const standing = new NodeStanding({
    clock,
    store,
    logger,
    operatorOf: (nodeId) => registry.get(nodeId)?.operatorId ?? nodeId,
    speedSamples: () => speedSamplesOf(registry.all(), speed),
    onCooldown: (offence) => prometheus.cooldownsStarted.inc({ offence }),
    onQuarantineChange: (nodeId, quarantined) => link?.announceQuarantine(nodeId, quarantined),
    onJudged: (judgment) => link?.announceJudgment(judgment),
  });
  prometheus.observeStanding(() => standing.tally(Array.from(registry.all(), (node) => node.id)));
  const checkPolicy = {
    registry,
    messenger,
    standing,
    clock,
    logger,
    random: Math.random,
    namedReferences: new Set(config.referenceNodes),
    rateOverride: config.checkRate,
    timeoutMs: CHECK_TIMEOUT_MS,
  };
  const checks = new SpotChecks({
    ...checkPolicy,
    metrics: { checked: (result) => prometheus.checks.inc({ result }), skipped: (reason) => prometheus.checksSkipped.inc({ reason }) },
  });
  // One queue for every finished job's bookkeeping (signature checks, settlement, receipts), behind the I/O already in.
  const afterIo = new AfterIoQueue();
  jobs = new JobManager({
    replicaId,
    afterIo,
    metrics: prometheus,
    clock,
    registry,
    store,
    chooser: new SchedulerChooser(speed, Math.random, standing),
    speed,
    speedWrites,
    standing,
    checks,
    logger,
    verifier: wasmSchnorrVerifier,
    pendingTimeoutMs: config.pendingTimeoutS * 1000,
    jobTimeoutMs: config.jobTimeoutS * 1000,
    acceptTimeoutMs: config.acceptTimeoutS * 1000,
    progress: { ...DEFAULT_PROGRESS_LIMITS, firstPartFloorMs: config.firstTokenTimeoutS * 1000, stallFloorMs: config.stallTimeoutS * 1000 },
    resultTtlMs: config.resultTtlS * 1000,
  });
  const prices = config.pricesFile === undefined ? new PriceTable(FREE) : PriceTable.fromFile(config.pricesFile);
  const platform = loadOrCreatePlatformKey(config.dataDir);
  const receiptSignatures = new ReceiptSignatures({
    registry,
    messenger,
    store,
    logger,
    verifier: wasmSchnorrVerifier,
    afterIo,
    metrics: { outcome: (outcome) => prometheus.receiptSignatures.inc({ outcome }) },
  });
  const billing = config.ledger
    ? new JobBilling({
        store,
        prices,
        feeBps: config.feeBps,
        holdMs: config.holdS * 1000,
        platform,
        clock,
        logger,
        nodes: {
          operatorOf: async (nodeId) => registry.get(nodeId)?.operatorId ?? (await store.getNode(nodeId))?.operatorId ?? nodeId,
          modelSha256: (nodeId, model) => registry.get(nodeId)?.models.find((m) => m.id === model)?.sha256 ?? null,
          modelSizeBytes: (model) => registry.modelSizeBytes(model),
        },
        onIssued: (receipt) => receiptSignatures.request(receipt),
      })
    : undefined;
  jobs.attachBilling(billing);
  billingForTakeOver = billing;
  const earnings = new EarningsSweep({
    store,
    clock,
    logger,
    quarantinedNodes: () => Array.from(registry.all(), (node) => node.id).filter((id) => standing.isQuarantined(id)),
  });
  const settlement = new SettlementWorker({
    store,
    chains: configuredChains(config, logger),
    schedule: config.payoutSchedule,
    threshold: config.payoutThreshold,
    confirmations: config.confirmations,
    clock,
    logger,
  });
  const canaries = new Canaries({ registry, jobs, checks, standing, clock, random: Math.random, logger, intervalMs: config.canaryIntervalS * 1000 });
  if (replicaBus) {
    link = new ReplicaLink({
      ...replicaBus,
      replicaId,
      registry,
      jobs,
      clock,
      logger,
      standing,
      onHeldHere: (nodeId) =>
        void store.setNodeStatus(nodeId, "online", new Date(clock.now()), replicaId).catch((err: unknown) => logger.error({ err }, "could not store node status")),
      stageOffers: (nodeId) => shards.offersOf(nodeId),
      onPeerOffers: (nodeId, offers) => shards.setPeerOffers(nodeId, offers),
      pipelineSummaries: () => (shards.isLeading ? shards.summaries() : new Map()),
      onPeerPipeline: (nodeId, summary) => shards.setPeerPipeline(nodeId, summary),
    });
    const peers = link;
    leader = new ShardingLeader({ replicaId, clock, peers: () => peers.livePeers().map((p) => p.replica), setLeading: (leading) => shards.setLeading(leading) });
  }
  let stageChecks: StageChecks | undefined;
  const shards: ShardingManager = new ShardingManager({
    registry,
    // A pipeline's reports about another replica's job go back to that replica, as a node's would.
    jobs: link?.sessionSink ?? jobs,
    clock,
    logger,
    messenger,
    // With a bus, one replica leads sharded models (bus/sharding-leader.ts) and reaches stage nodes on every replica.
    // Its stage ids start at random, so a node that kept a stage of an earlier leader never sees the same id again.
    ...(bus ? { leading: false, firstStageId: 1 + randomInt(2 ** 31) } : {}),
    replicas: config.shardReplicas,
    excluded: (nodeId) => standing.isQuarantined(nodeId),
    onRequestFinished: (request) => stageChecks?.afterRequest(request),
  });
  sharding = shards;
  stageChecks = new StageChecks({
    ...checkPolicy,
    replays: shards,
    metrics: { checked: (result) => prometheus.stageChecks.inc({ result }), skipped: (reason) => prometheus.stageChecksSkipped.inc({ reason }) },
  });
  const admission = new Admission(store, clock, config.admission);
  await restoreState(store, registry, speed, clock, admission, replicaId);
  standing.restore(await store.listNodeStandings(), await store.listOperatorStandings());
  const reconciled = await billing?.reconcile({ heldElsewhere: await embeddingsHeldElsewhere(store, clock, replicaId) });
  if (reconciled) logger.info({ jobs: reconciled }, "closed the accounts of jobs the last process left open");
  const admissionWatch = new AdmissionWatch(store, registry, standing, clock, logger);
  embeddings = new EmbeddingRequests({
    registry,
    messenger,
    standing,
    clock,
    logger,
    queueTimeoutMs: config.pendingTimeoutS * 1000,
    metrics: {
      request: (outcome, seconds) => {
        prometheus.embeddingRequests.inc({ outcome });
        prometheus.embeddingSeconds.observe(seconds);
      },
      attemptFailed: (reason) => prometheus.embeddingAttemptsFailed.inc({ reason }),
    },
  });
  const ctx: CoordinatorContext = {
    config,
    clock,
    store,
    registry,
    jobs,
    speed,
    standing,
    checks,
    metrics: prometheus,
    nodeAuth: { clock, nonces: new NonceCache(), verifier: wasmSchnorrVerifier, ...(sharedNonces ? { shared: sharedNonces } : {}) },
    limiter: new RateLimiter(),
    authThrottle: new AuthThrottle(),
    logger,
    admission,
    prices,
    platform,
    receiptSignatures,
    embeddings,
    billing,
    sharding: shards,
    messenger,
    replicaId,
  };
  const app = buildApp(ctx);
  const gate = installShutdownGate(app);
  if (link) {
    relay?.start();
    await link.start();
    const peers = link;
    prometheus.observePeers(() => peers.livePeers());
  }
  const hub = new SessionHub({
    clock,
    logger,
    registry,
    nodeAuth: ctx.nodeAuth,
    authThrottle: ctx.authThrottle,
    // With a bus, what nodes held here say about other replicas' jobs goes back to those replicas.
    jobs: link ? { ...link.sessionSink, dispatch: () => jobs.dispatch() } : jobs,
    stages: relay ?? shards,
    checks: relay ? { onMessage: (nodeId, message) => relay.onCheckMessage(nodeId, message) } : checks,
    receipts: receiptSignatures,
    embeddings: relay ? { onMessage: (nodeId, message) => relay.onEmbedMessage(nodeId, message) } : embeddings,
  });
  app.server.on("upgrade", (request, socket, head) => hub.handleUpgrade(request, socket, head));
  return {
    ctx,
    app,
    hub,
    admissionWatch,
    earnings,
    settlement,
    replica,
    tick() {
      replica.maybeRun();
      sharedNonces?.maybePrune();
      link?.tick();
      relay?.tick();
      leader?.tick();
      registry.sweep();
      jobs.tick();
      admissionWatch.maybePoll();
      standing.refreshSpeed(clock.now());
      checks.tick();
      stageChecks?.tick();
      canaries.tick();
    },
    stopAccepting() {
      gate.stopAccepting();
    },
    close() {
      closing ??= shutDown();
      return closing;
    },
  };

  /** The escrow of jobs this replica ended for a dead replica goes back to their clients now, not at some restart. */
  async function refundTakenOver(jobIds: string[]): Promise<void> {
    if (!billingForTakeOver) return;
    for (const id of jobIds) {
      try {
        const job = await store.getJob(id);
        if (job) await billingForTakeOver.refund({ id, ownerId: job.ownerId });
      } catch (err) {
        logger.error({ err, job: id }, "could not refund a dead replica's job; the next start's reconciliation will");
      }
    }
  }

  async function shutDown(): Promise<void> {
    gate.stopAccepting();
    const failing = jobs.activeCount;
    // Polled: a request that passed the gate just before it closed may still be submitting its job.
    const failUnfinished = () => void jobs.failUnfinished("shutting_down", SHUTDOWN_MESSAGE);
    if (!(await gate.drained(IN_FLIGHT_GRACE_MS, failUnfinished))) {
      logger.warn({ requests: gate.inFlight }, "shutdown: requests still unanswered are cut");
    }
    await hub.close();
    await app.close();
    // Before the bus closes: a job on a node of another replica is cancelled there, so the node stops working for it.
    await jobs.failUnfinished("shutting_down", SHUTDOWN_MESSAGE);
    relay?.stop();
    await link?.stop();
    await bus?.bus.close();
    await speedWrites.flush();
    // Standing waits STANDING_WRITE_DELAY_MS before its writes, and receipt signatures are gathered: land both.
    await standing.settled();
    await writes.settled();
    await receiptSignatures.flush();
    await sharedNonces?.settled();
    // Last: every job of this replica is ended, so the id is free for a restart at once.
    await replica.release().catch((err: unknown) => logger.error({ err }, "could not release the replica lease"));
    await store.close();
    logger.info({ failed_jobs: failing }, "coordinator stopped");
  }
}

/** Creates the coordinator and listens; runs the 1 s deadline tick and the content-expiry sweep. */
export async function startCoordinator(config: CoordinatorConfig, deps: CoordinatorDeps = {}): Promise<RunningCoordinator> {
  const coordinator = await createCoordinator(config, deps);
  const { ctx } = coordinator;
  await coordinator.app.listen({ host: config.host, port: config.port });
  const address = coordinator.app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  await coordinator.replica.announce(`${config.host}:${port}`);
  const ticker = setInterval(() => coordinator.tick(), TICK_MS);
  const sweepEarnings = () => {
    coordinator.earnings
      .run()
      // Earnings that just became available may be due for an auto-payout: the worker looks now, not at its next pass.
      .then(({ released }) => (released > 0 ? coordinator.settlement.runOnce() : undefined))
      .catch((err: unknown) => ctx.logger.error({ err }, "earnings sweep or settlement failed"));
  };
  const earningsTimer = setInterval(sweepEarnings, EARNINGS_SWEEP_MS);
  earningsTimer.unref();
  sweepEarnings();
  coordinator.settlement.start();
  // The sweep also destroys the keys of expired content (store/design.md); the first runs at once, so keys whose
  // bucket ended while the coordinator was down do not wait for the first interval.
  const sweepExpired = () => {
    ctx.store.expireJobContent(new Date(ctx.clock.now())).catch((err: unknown) => ctx.logger.error({ err }, "content expiry failed"));
  };
  const expiry = setInterval(sweepExpired, EXPIRY_SWEEP_MS);
  sweepExpired();
  ticker.unref();
  expiry.unref();
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  return {
    ...coordinator,
    url: `http://${host}:${port}`,
    port,
    async close() {
      clearInterval(ticker);
      clearInterval(expiry);
      clearInterval(earningsTimer);
      await coordinator.settlement.stop();
      await coordinator.close();
    },
  };
}

/** Which embedding requests' escrow another live replica holds (its own end settles it): read once, at start. */
async function embeddingsHeldElsewhere(store: Store, clock: Clock, self: string): Promise<(requestId: string) => boolean> {
  const liveSince = clock.now() - REPLICA_LEASE_MS;
  const live = new Set((await store.listReplicaLeases()).filter((l) => l.id !== self && l.lastSeenAt.getTime() >= liveSince).map((l) => l.id));
  return (requestId) => {
    const owner = embeddingReplicaOf(requestId);
    return owner !== undefined && live.has(owner);
  };
}

/**
 * After a restart: known nodes of admitted operators come back offline until they speak (a banned or pending
 * operator's nodes, and keys past their rotation grace, are left out); jobs this replica's last process held are
 * failed honestly, and no other replica's.
 */
async function restoreState(store: Store, registry: NodeRegistry, speed: SpeedMetrics, clock: Clock, admission: Admission, replicaId: string): Promise<void> {
  const now = new Date(clock.now());
  const admitted = new Set((await store.listOperators()).filter((o) => o.status === "active").map((o) => o.id));
  for (const node of await store.listNodes()) {
    if (!admitted.has(node.operatorId) || admission.isRetired(node.retiredAt)) continue;
    registry.restore({
      id: node.id,
      operatorId: node.operatorId,
      retiredAt: node.retiredAt?.getTime(),
      version: node.version,
      hardware: node.hardware,
      models: node.models,
      maxConcurrency: node.maxConcurrency,
      gpus: node.gpus,
      loadedModels: node.loadedModels,
      lastSeenAt: node.lastSeenAt?.getTime() ?? 0,
    });
    // Only the nodes this replica held (or nobody did): another replica may be serving the rest right now.
    if (node.status === "online") await store.setNodeStatus(node.id, "offline", now, replicaId);
  }
  // Only this replica's jobs: another replica sharing the database may be running its own right now.
  await store.failOwnJobs(replicaId, now, now, "the coordinator restarted while the job was running");
  for (const m of await store.listNodeModelMetrics()) {
    speed.restore(m.nodeId, m.model, { tokensPerSecond: m.tokensPerSecond, ttftMs: m.ttftMs, jobs: m.samples });
  }
}
