import { join } from "node:path";
import { WebSocket } from "ws";
import {
  AfterIoQueue,
  CoordinatorMessage,
  TesseraError,
  encodeNpub,
  type DrainReason,
  type GpuStats,
  type HeartbeatAck,
  nodeCommandReportPath,
  type Hardware,
  type NodeHeartbeat,
  type NodeRegistered,
  type ServedModel,
  type Signer,
} from "@tessera/protocol";
import type { BackendAdapter, BackendModel } from "./backends/adapter.js";
import { backoffDelayMs } from "./backoff.js";
import type { NodeConfig } from "./config.js";
import { nodeTestHooks } from "./config.js";
import { JobRunner, SESSION_LOST, type FrameSender, type JobStats } from "./job-runner.js";
import { readKeyFile } from "./key-store.js";
import { type NodeIdentity, loadNodeIdentity } from "./identity.js";
import { scoreForCheck } from "./score-for-check.js";
import { answerEmbedRequest } from "./embed-for-request.js";
import type { NodeLogger } from "./logger.js";
import type { BackendFactory } from "./backend-from-config.js";
import { HEARTBEAT_PATH, basicHardware, refreshModelFiles, registerNode, resolveServedModels } from "./register-node.js";
import { machineProbe } from "./machine.js";
import { StageHost, stageMemoryOffer, writeStageOfferRefusal, type StageOfferRefusal } from "./stage-host/index.js";
import { resolveStageRuntime, spanGpuMemoryOffer } from "./stage/span-runtime.js";
import { gpuRuntimeDir } from "./gpu-runtime/gpu-runtime-record.js";
import { NodeCommandExecutor, dropModelsThatDoNotFit, withVramCap } from "./commands/index.js";
import { CoordinatorList } from "./coordinator-list.js";
import { SessionClient, systemClock, type Clock, type WebSocketCtor } from "./session-client.js";
import { signedPost, type FetchLike } from "./signed-http.js";
import { nodeHttpFetch } from "./node-http-fetch.js";
import { JOURNAL_FILE_NAME, ServedJournal, answerReceiptSign } from "./receipts/index.js";
import { type IdleEffects, type IdleProbe, createIdleSupervisor, describeIdleAndLimits, recentOwnWork, releaseModelMemory, reloadModel } from "./idle/index.js";
import { registerPayoutAddress } from "./payout-address.js";

export interface DaemonDeps {
  /** Builds the backend from the config. Default: `createBackendFromConfig` (probe, adapters, embedded fallback). */
  createBackend?: BackendFactory;
  logger: NodeLogger;
  /** Defaults to the key file in the config's paths. */
  signer?: Signer;
  /** Defaults to what the config's paths hold (identity.ts): the operator's delegation, a key hand-over. */
  identity?: NodeIdentity;
  fetch?: FetchLike;
  WebSocket?: WebSocketCtor;
  clock?: Clock;
  random?: () => number;
  detectHardware?: () => Promise<Hardware>;
  /** Coarse hardware for registration and live GPU figures for heartbeats. Default: nvidia-smi / rocm-smi / OS. */
  gpuStats?: () => Promise<GpuStats[]>;
  /** The idle policy's probe (idle/). Default: `[idle] probe_file` when set, else the machine's tools. */
  idleProbe?: IdleProbe;
}

export interface DaemonStatus {
  registered: boolean;
  sessionOpen: boolean;
  sessionsOpened: number;
  draining: boolean;
  activeJobs: number;
  servedModels: string[];
  jobs: JobStats;
  lastHeartbeatMs: number | undefined;
  /** The idle policy's state and why (undefined with `[idle] mode = "always"`). */
  idle: { state: string; reason: string } | undefined;
  /** The coordinator's refusal of this node's span offer, since start (undefined: none, or no `stage_model`). */
  stageOfferRefusal: StageOfferRefusal | undefined;
}

export interface DaemonHandle {
  nodeId: string;
  backend: BackendAdapter;
  /** Resolves once registered and the first session is open. Rejects on a fatal error. */
  ready: Promise<void>;
  /** Settles when the daemon has ended: resolves after `stop()`, rejects on a fatal error (e.g. registration refused). */
  done: Promise<void>;
  /** Drains: `draining`, no new jobs, in-flight jobs get `shutdown_grace_s`, `goodbye`, close. Idempotent. */
  stop(): Promise<void>;
  status(): DaemonStatus;
}

/** Codes that retrying registration cannot fix: the daemon stops with them. */
const FATAL_REGISTER_CODES = new Set(["bad_request", "forbidden", "conflict", "payload_too_large"]);

/**
 * Starts the node daemon: backend, models, registration (retried with backoff), heartbeats, the job session.
 * Returns once the backend is ready; registration and the session continue in the background (see `ready`).
 */
export async function startDaemon(config: NodeConfig, deps: DaemonDeps): Promise<DaemonHandle> {
  const logger = deps.logger;
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? Math.random;
  const fetchImpl: FetchLike = deps.fetch ?? nodeHttpFetch;
  // The daemon signs every result and receipt: libsecp256k1 in WebAssembly (0.1 ms a signature against noble's 2 ms),
  // loaded here rather than at import so that CLI commands which never sign do not pay for it.
  const signer = deps.signer ?? (await import("@tessera/protocol/wasm-schnorr")).wasmSchnorrSigner(readKeyFile(config.paths.keyFile).secretKeyHex);
  const nodeId = signer.publicKeyHex;
  const nowSeconds = () => Math.floor(clock.now() / 1000);
  const identity = deps.identity ?? loadNodeIdentity(config.paths, signer, nowSeconds());

  const coordinators = new CoordinatorList([config.coordinator_url, ...config.coordinator_replicas]);
  logger.info(
    `tessera node starting: id ${encodeNpub(nodeId)} (${nodeId.slice(0, 12)}…), coordinator ${config.coordinator_url}` +
      (coordinators.several ? ` (replicas: ${config.coordinator_replicas.join(", ")})` : ""),
  );
  logger.info(
    identity.delegation
      ? `operator ${encodeNpub(identity.operatorId)} (delegation until ${new Date(identity.delegation.expires_at * 1000).toISOString().slice(0, 10)})`
      : "no operator delegation: this node is its own operator",
  );
  // Loaded lazily so that importing the daemon does not load node-llama-cpp.
  const createBackend = deps.createBackend ?? (await import("./backend-from-config.js")).createBackendFromConfig;
  const backend = await createBackend(config, { fetch: fetchImpl, logger });
  const health = await backend.health();
  if (!health.ok) {
    await backend.close?.();
    throw new TesseraError("internal_error", `backend ${backend.kind} is not healthy: ${health.message}`);
  }
  logger.info(`backend: ${backend.kind}`);
  let backendModels: BackendModel[] = await backend.listModels();
  const { served, missing, refused } = resolveServedModels(config.served_models, backendModels, backend.kind);
  for (const id of missing) logger.warn(`served_models lists ${id} but backend ${backend.kind} does not have it; not advertised`);
  for (const why of refused) logger.warn(why);
  if (served.length === 0 && backend.kind !== "stage-only") logger.warn(`no models to serve: backend ${backend.kind} has none of served_models`);
  else logger.info(`models: ${served.map((m) => m.id).join(", ")}`);
  const servedModels: ServedModel[] = served;
  const servedIds = new Set(servedModels.map((m) => m.id));
  const machine = deps.detectHardware && deps.gpuStats ? undefined : machineProbe();
  const gpuStats = deps.gpuStats ?? machine!.gpuStats;
  // Spans on a GPU backend offer the device's memory under max_vram_fraction; the CPU runtimes offer RAM under it.
  const stageGpuRuntime = gpuRuntimeDir(config.paths.dataDir);
  const stageMemory = (): number =>
    spanGpuMemoryOffer(resolveStageRuntime(config.stage_backend, undefined, { gpuRuntimeDir: stageGpuRuntime }), config.limits.max_vram_fraction) ??
    stageMemoryOffer(config.limits.max_vram_fraction);
  const stageHost = config.stage_model ? await StageHost.create({
        modelPath: config.stage_model,
        threads: config.stage_threads,
        backend: config.stage_backend,
        gpuRuntimeDir: stageGpuRuntime,
        perturb: nodeTestHooks().stagePerturb,
        logger,
        freeMemoryBytes: config.stage_memory_mb > 0 ? () => config.stage_memory_mb * 1024 * 1024 : stageMemory,
        wallNow: () => clock.now(),
        recordRefusal: (refusal) => writeStageOfferRefusal(config.paths.dataDir, refusal),
      }) : undefined;
  const hardware = await (deps.detectHardware ?? machine!.detectHardware)().catch((err: unknown) => {
    logger.warn({ err }, "hardware detection failed; registering CPU cores and RAM only");
    return basicHardware();
  });
  // Fit check: a model that cannot fit this node's memory is never advertised.
  // Fit checks see only the share of each GPU the operator allows ([limits] max_vram_fraction).
  const fitHardware = withVramCap(hardware, config.limits.max_vram_fraction);
  dropModelsThatDoNotFit({ list: servedModels, ids: servedIds }, fitHardware, (line) => logger.warn(line));
  logger.info(
    `hardware: ${hardware.cpu_cores} cores, ${Math.round(hardware.ram_mb / 1024)} GiB RAM, ` +
      (hardware.gpus.length ? hardware.gpus.map((g) => `${g.name} (${Math.round(g.vram_mb / 1024)} GiB)`).join(", ") : "no GPU") +
      (hardware.tier ? `, tier ${hardware.tier}` : ""),
  );

  // What this node served, kept across restarts, to check receipts against before signing them (receipts/).
  const journal = ServedJournal.open({ path: join(config.paths.dataDir, JOURNAL_FILE_NAME), now: () => clock.now(), warn: (line) => logger.warn(line) });
  // Receipts to sign arrive in bursts just after jobs end (one BIP-340 signature each): each waits for the I/O already
  // in, so the next job's assignment and the streams still running go first.
  const afterIo = new AfterIoQueue();
  const runner = new JobRunner({
    journal,
    backend,
    maxConcurrency: config.max_concurrency,
    isServed: (model) => servedIds.has(model),
    logger,
    now: () => clock.now(),
    signer,
    modelSha256: (model) => servedModels.find((m) => m.id === model)?.sha256,
  });

  let registered = false;
  /** Set when shutdown begins: no more registration attempts. */
  let ending = false;
  /** Set when draining is over: no more heartbeats. */
  let stopping = false;
  let heartbeatTimer: unknown;
  let heartbeatIntervalMs = config.heartbeat_interval_s * 1000;
  let lastHeartbeatMs: number | undefined;
  let registering: Promise<void> | undefined;
  let retryTimer: unknown;
  let retryWake: (() => void) | undefined;
  let resolveReady!: () => void;
  let rejectReady!: (err: unknown) => void;
  const ready = new Promise<void>((res, rej) => ((resolveReady = res), (rejectReady = rej)));
  let resolveDone!: () => void;
  let rejectDone!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => ((resolveDone = res), (rejectDone = rej)));
  // Callers may await only one of the two; neither may become an unhandled rejection.
  ready.catch(() => {});
  done.catch(() => {});

  const post = <T>(path: string, body: unknown) =>
    signedPost<T>({ fetch: fetchImpl, signer, baseUrl: coordinators.current, nowSeconds }, path, body);

  const applyRegistration = (answer: NodeRegistered) => {
    registered = true;
    if (config.sources.heartbeat_interval_s === "default" && answer.heartbeat_interval_s > 0) {
      heartbeatIntervalMs = answer.heartbeat_interval_s * 1000;
    }
    logger.info(`registered with ${coordinators.current} (status ${answer.status}, heartbeat every ${heartbeatIntervalMs / 1000} s)`);
  };

  /**
   * One registration at a time; heartbeat and session 401s share it. A refusal retrying cannot fix (the operator
   * banned, a node key moved to another operator) stops the daemon, whenever it comes.
   */
  const register = (): Promise<void> => {
    registering ??= registerNode(config, { baseUrl: coordinators.current, signer, models: servedModels, hardware, fetch: fetchImpl, nowSeconds, runningCommands: commands.inProgress(), identity })
      .then(applyRegistration)
      .catch((err: unknown) => {
        if (err instanceof TesseraError && FATAL_REGISTER_CODES.has(err.code)) fail(err);
        throw err;
      })
      .finally(() => (registering = undefined));
    return registering;
  };

  let failed = false;
  const fail = (err: unknown) => {
    if (failed) return;
    failed = true;
    logger.error({ err }, "daemon stopping on a fatal error");
    rejectReady(err);
    void shutdown(0).then(() => rejectDone(err));
  };

  /** Registers, retrying with backoff until it works or the coordinator refuses for good. */
  const registerWithRetry = async (): Promise<boolean> => {
    for (let attempt = 0; !ending; attempt++) {
      try {
        await register();
        return true;
      } catch (err) {
        if (err instanceof TesseraError && FATAL_REGISTER_CODES.has(err.code)) return false;
        const delay = backoffDelayMs(attempt, random, { baseMs: 500, capMs: 30_000, floorMs: 100 });
        const reason = err instanceof Error ? err.message : String(err);
        if (coordinators.several) {
          const from = coordinators.current;
          logger.warn(`register at ${from} failed (${reason}); trying ${coordinators.advance()} in ${delay} ms`);
        } else logger.warn(`register failed (${reason}); retrying in ${delay} ms`);
        await new Promise<void>((res) => {
          retryWake = res;
          retryTimer = clock.setTimeout(res, delay);
        });
      }
    }
    return false;
  };

  const scheduleHeartbeat = () => {
    if (stopping) return;
    heartbeatTimer = clock.setTimeout(() => void runHeartbeat(), heartbeatIntervalMs);
  };

  const heartbeat = async () => {
    heartbeatTimer = undefined;
    const started = clock.now();
    try {
      backendModels = await backend.listModels().catch(() => backendModels);
      for (const id of refreshModelFiles(servedModels, backendModels)) {
        logger.info(`model ${id}: file ${servedModels.find((m) => m.id === id)?.sha256?.slice(0, 12) ?? "unknown"} (changed in backend ${backend.kind})`);
      }
      const loaded = new Set(backendModels.filter((m) => m.loaded).map((m) => m.id));
      const body: NodeHeartbeat = {
        type: "heartbeat",
        gpus: await gpuStats().catch(() => []),
        loaded_models: servedModels.map((m) => m.id).filter((id) => loaded.has(id)),
        models: servedModels,
        active_jobs: runner.activeJobs,
        max_concurrency: config.max_concurrency,
        draining: runner.isDraining,
      };
      const ack = await post<HeartbeatAck | undefined>(HEARTBEAT_PATH, body);
      commands.acceptAll(ack?.commands);
      lastHeartbeatMs = clock.now();
      logger.info(`heartbeat OK (${lastHeartbeatMs - started} ms)`);
    } catch (err) {
      if (err instanceof TesseraError && err.code === "unauthorized") {
        logger.warn(`heartbeat refused (${err.message}); registering again`);
        await register().catch((e: unknown) => logger.warn({ err: e }, "re-register failed"));
      } else {
        logger.warn(`heartbeat failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    scheduleHeartbeat();
  };

  let heartbeatInFlight: Promise<void> | undefined;
  const runHeartbeat = (): Promise<void> => (heartbeatInFlight ??= heartbeat().finally(() => (heartbeatInFlight = undefined)));
  /** A heartbeat now (served models changed): replaces the pending one; one in flight is waited for first. */
  const syncNow = async (): Promise<void> => {
    await heartbeatInFlight;
    if (stopping) return;
    if (heartbeatTimer !== undefined) clock.clearTimeout(heartbeatTimer);
    heartbeatTimer = undefined;
    await runHeartbeat();
  };
  /** Model install/remove commands from the node's operator (packages/node/src/commands/). */
  const commands = new NodeCommandExecutor({
    backend,
    hardware: fitHardware,
    configured: config.served_models,
    configuredSource: config.sources.served_models,
    configFile: config.paths.configFile,
    served: { list: servedModels, ids: servedIds },
    report: (id, report) => post<unknown>(nodeCommandReportPath(nodeId, id), report).then(() => undefined),
    sync: syncNow,
    logger,
    now: () => clock.now(),
  });

  const onFrame = (text: string, send: FrameSender) => {
    let parsed: CoordinatorMessage;
    try {
      const result = CoordinatorMessage.safeParse(JSON.parse(text));
      if (!result.success) {
        logger.warn(`ignored malformed coordinator message: ${result.error.issues[0]?.message ?? "invalid"}`);
        return;
      }
      parsed = result.data;
    } catch {
      logger.warn("ignored a session frame that is not JSON");
      return;
    }
    switch (parsed.type) {
      case "job.assign":
        runner.assign(parsed, send);
        break;
      case "job.cancel":
        runner.cancel(parsed.job_id, parsed.reason);
        break;
      case "ping":
        send(`{"type":"pong","sent_at":${parsed.sent_at}}`);
        break;
      case "node.command":
        commands.accept(parsed.command);
        break;
      case "check.score":
        void scoreForCheck(backend, parsed).then((reply) => send(JSON.stringify(reply)));
        break;
      case "embed.request":
        void answerEmbedRequest(backend, parsed).then((reply) => {
          // Journalled as served work with no output tokens, so the node can check and sign its receipt (receipts/).
          if (reply.type === "embed.result") {
            const model_sha256 = servedModels.find((m) => m.id === parsed.model)?.sha256 ?? null;
            journal.ended({ job_id: parsed.request_id, model: parsed.model, model_sha256, stop: false, end: "finished", output_tokens: 0, result_commitment: null });
          }
          send(JSON.stringify(reply));
        });
        break;
      case "receipt.sign":
        void afterIo.run(() => send(JSON.stringify(answerReceiptSign(parsed, { journal, signer, logger }))));
        break;
      case "stage.load":
      case "stage.unload":
      case "stage.drop":
      case "stage.tokenize":
        stageHost?.onMessage(parsed, send);
        break;
      case "offer.refused":
        if (stageHost) stageHost.onOfferRefused(parsed);
        else logger.warn(`the coordinator refused a span offer of ${parsed.model}, but this node offers none (no stage_model); ignored`);
        break;
    }
  };
  const onBinary = (data: Buffer, sendBinary: (frame: Uint8Array) => void) => {
    stageHost?.onBinary(data, sendBinary, (text) => session.send(text));
  };

  /**
   * The idle policy (idle/): serve while the machine is idle, step aside when its owner is back. Until it enlists
   * the runner is draining, so a session that opens first says `draining` and takes no job.
   */
  let modelReleased = false;
  /**
   * Why the runner drains, as the coordinator is told it in `draining` (protocol drain-reason.ts): until the idle
   * policy first enlists, the machine is not idle yet; then what the policy saw; `shutting_down` once stopping.
   */
  let drainReason: DrainReason = "waiting_for_idle";
  const drainingMessage = () => JSON.stringify({ type: "draining", reason: drainReason });
  const idleEffects: IdleEffects = {
    enlist: async () => {
      if (modelReleased) {
        await reloadModel(backend);
        modelReleased = false;
      }
      runner.resume();
      // A heartbeat with `draining: false` is what un-drains a node in the coordinator's registry; the span file is
      // offered again (the coordinator dropped this node's spans when it drained).
      if (registered && !stopping) await syncNow();
      if (stageHost && session.isOpen) session.send(JSON.stringify(stageHost.offer()));
      logger.info(`idle: enlisted; taking jobs (${servedModels.map((m) => m.id).join(", ") || "no models"})`);
    },
    drain: async (reason, code) => {
      const started = clock.now();
      drainReason = code;
      runner.startDraining();
      if (session.isOpen) session.send(drainingMessage());
      const inFlight = runner.activeJobs;
      let handed = 0;
      if (inFlight > 0) {
        let graceTimer: unknown;
        const graceOver = new Promise<boolean>((res) => (graceTimer = clock.setTimeout(() => res(false), config.idle.drain_grace_ms)));
        const finished = await Promise.race([runner.idle().then(() => true), graceOver]);
        clock.clearTimeout(graceTimer);
        if (!finished) {
          handed = runner.handBack(reason);
          let abortTimer: unknown;
          await Promise.race([runner.idle(), new Promise<void>((res) => (abortTimer = clock.setTimeout(res, 2000)))]);
          clock.clearTimeout(abortTimer);
        }
      }
      let memory = "model kept loaded (release_on_use = false)";
      if (config.idle.release_on_use) {
        memory = await releaseModelMemory(backend, servedModels.map((m) => m.id));
        modelReleased = true;
        const spans = stageHost?.releaseSpans() ?? 0;
        if (spans > 0) memory += `; ${spans} layer span(s) released (their requests moved to replicas)`;
      }
      if (registered && !stopping) void syncNow();
      const summary = `${inFlight} job(s) in flight, ${inFlight - handed} finished, ${handed} handed to other nodes; ${memory}; ${clock.now() - started} ms`;
      logger.info(`idle: drained (${reason}): ${summary}`);
      return summary;
    },
  };
  const idle = createIdleSupervisor(config, {
    clock,
    logger,
    effects: idleEffects,
    // A job in flight (or just ended) is this daemon's own GPU work, not the owner's (Apple's whole-device reading).
    ownGpuBusy: recentOwnWork(() => runner.activeJobs > 0, () => clock.now()),
    ...(deps.idleProbe ? { probe: deps.idleProbe } : {}),
  });
  if (idle) runner.startDraining();

  const session = new SessionClient({
    coordinators,
    signer,
    WebSocket: deps.WebSocket ?? WebSocket,
    clock,
    random,
    logger,
    onFrame,
    onBinary,
    onOpen: (send) => {
      // A draining node offers no spans (the coordinator drops a draining node's spans); enlisting offers them.
      if (stageHost && !runner.isDraining) send(JSON.stringify(stageHost.offer()));
      if (runner.isDraining) send(drainingMessage());
      resolveReady();
    },
    onClose: () => {
      // The coordinator fails these jobs over to other nodes; finishing them here would burn GPU for nobody.
      if (runner.activeJobs > 0) {
        logger.warn(`session lost with ${runner.activeJobs} job(s) in flight; aborting them`);
        runner.abortAll(SESSION_LOST);
      }
    },
    reregister: register,
  });

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (graceMs: number): Promise<void> => {
    shutdownPromise ??= (async () => {
      ending = true;
      await idle?.stop();
      // Wake a registration retry that is waiting out its backoff so it sees `ending` and stops (no stray timer).
      if (retryTimer !== undefined) clock.clearTimeout(retryTimer);
      retryWake?.();
      rejectReady(new TesseraError("node_disconnected", "daemon stopped before its session opened"));
      drainReason = "shutting_down";
      runner.startDraining();
      if (session.isOpen) session.send(drainingMessage());
      const inFlight = runner.activeJobs;
      logger.info(`draining: ${inFlight} job(s) in flight, grace ${graceMs / 1000} s`);
      if (inFlight > 0) {
        let graceTimer: unknown;
        const graceOver = new Promise<boolean>((res) => (graceTimer = clock.setTimeout(() => res(false), graceMs)));
        const finished = await Promise.race([runner.idle().then(() => true), graceOver]);
        clock.clearTimeout(graceTimer);
        if (!finished) {
          logger.warn(`grace period over; aborting ${runner.activeJobs} job(s)`);
          runner.abortAll("node shutting down");
          // Abort is cooperative: give adapters a moment to wind down, but never hang shutdown on one.
          let abortTimer: unknown;
          await Promise.race([runner.idle(), new Promise<void>((res) => (abortTimer = clock.setTimeout(res, 2000)))]);
          clock.clearTimeout(abortTimer);
        }
      }
      stopping = true;
      if (heartbeatTimer !== undefined) clock.clearTimeout(heartbeatTimer);
      heartbeatTimer = undefined;
      if (session.isOpen) session.send('{"type":"goodbye"}');
      await session.close(1000, "goodbye");
      await commands.close();
      await backend.close?.();
      await stageHost?.close();
      journal.close();
      logger.info(`stopped (${runner.stats.completed} jobs completed)`);
    })();
    return shutdownPromise;
  };

  logger.info(describeIdleAndLimits(config));
  idle?.start();
  void (async () => {
    if (!(await registerWithRetry()) || ending) return;
    if (config.payout_address) void registerPayoutAddress({ address: config.payout_address, selfOperated: !identity.delegation, fetch: fetchImpl, signer, baseUrl: coordinators.current, nowSeconds, logger });
    scheduleHeartbeat();
    session.start();
  })();

  return {
    nodeId,
    backend,
    ready,
    done,
    stop: async () => {
      await shutdown(config.shutdown_grace_s * 1000);
      resolveDone();
    },
    status: () => ({
      registered,
      sessionOpen: session.isOpen,
      sessionsOpened: session.opens,
      draining: runner.isDraining,
      activeJobs: runner.activeJobs,
      servedModels: servedModels.map((m) => m.id),
      jobs: { ...runner.stats },
      lastHeartbeatMs,
      idle: idle ? { state: idle.state.name, reason: idle.state.reason } : undefined,
      stageOfferRefusal: stageHost?.offerRefusal,
    }),
  };
}
