import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManagedProcess } from "../cluster/managed-process.js";
import { TESSERA_BIN, waitUntil } from "../cluster/cluster.js";
import { freePort } from "../cluster/free-port.js";
import { NATS_URL, createScratchDatabase } from "./scratch-database.js";

export interface ReplicaProcess {
  id: string;
  url: string;
  port: number;
  process: ManagedProcess;
}

export interface DaemonProcess {
  name: string;
  id: string;
  /** The replicas it joins, its own first. */
  replicaIds: string[];
  process: ManagedProcess;
}

/** No caller's Tessera settings leak in; daemons serve whenever they run (no idle policy on a test machine). */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_COORDINATOR_REPLICAS: "", TESSERA_REPLICA_ID: "", TESSERA_DB: "", TESSERA_BUS: "", TESSERA_IDLE_MODE: "always" };

/**
 * Coordinator replicas as real processes on one scratch PostgreSQL database and (with `bus`) the machine's NATS
 * server, and node daemons joined to them, each on its own home. For the replica tests and `bench replicas`.
 */
export class ReplicaNetwork {
  readonly replicas = new Map<string, ReplicaProcess>();
  readonly daemons = new Map<string, DaemonProcess>();
  /** Daemons initialised, by name: their node id and replicas. */
  private readonly initialised = new Map<string, { id: string; replicaIds: string[] }>();
  /** Ports chosen for replicas not started yet (`reserve`). */
  private readonly reserved = new Map<string, number>();

  private constructor(
    readonly dir: string,
    private readonly database: Awaited<ReturnType<typeof createScratchDatabase>>,
    private readonly options: { bus: boolean; coordinatorArgs: string[]; coordinatorNodeFlags: string[] },
  ) {}

  /** `coordinatorNodeFlags`: Node's own flags for the coordinator processes (`--cpu-prof` to see where their time goes). */
  static async create(options: { bus?: boolean; coordinatorArgs?: string[]; coordinatorNodeFlags?: string[] } = {}): Promise<ReplicaNetwork> {
    const dir = mkdtempSync(join(tmpdir(), "tessera-replicas-"));
    return new ReplicaNetwork(dir, await createScratchDatabase(), { bus: options.bus ?? true, coordinatorArgs: options.coordinatorArgs ?? [], coordinatorNodeFlags: options.coordinatorNodeFlags ?? [] });
  }

  get dbUrl(): string {
    return this.database.url;
  }

  /** Rows of the shared database. */
  query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> {
    return this.database.query<R>(sql, params);
  }

  /**
   * Chooses replica `id`'s port now, so daemons can be initialised with its address (and their keys named in the
   * replicas' flags, `--reference-node`) before it starts. Returns its URL.
   */
  async reserve(id: string): Promise<string> {
    const port = await freePort();
    this.reserved.set(id, port);
    return `http://127.0.0.1:${port}`;
  }

  /**
   * Starts replica `id` (on `port`, its reserved port, or a free one) with `extraArgs`, and waits until it listens.
   * Start replicas one at a time: each migrates.
   */
  async startReplica(id: string, port?: number, extraArgs: string[] = []): Promise<ReplicaProcess> {
    const p = port ?? this.reserved.get(id) ?? (await freePort());
    const args = [...this.options.coordinatorNodeFlags, TESSERA_BIN, "coordinator", "start", "--open", "--port", String(p), "--data-dir", join(this.dir, id), "--db", this.database.url, "--replica-id", id, "--log-format", "json"];
    if (this.options.bus) args.push("--bus", NATS_URL);
    const proc = new ManagedProcess(id, process.execPath, [...args, ...this.options.coordinatorArgs, ...extraArgs], { env: ENV, logFile: join(this.dir, `${id}.log`) });
    await proc.waitFor(/listening on/, 60_000);
    const replica = { id, url: `http://127.0.0.1:${p}`, port: p, process: proc };
    this.replicas.set(id, replica);
    return replica;
  }

  /**
   * `tessera init` + `tessera start` of daemon `name` joined to `replicaIds` (the first, then the others as
   * `--coordinator-replicas`), with `nodeArgs` (its backend); waits until the first replica shows it online.
   */
  async startDaemon(name: string, replicaIds: string[], nodeArgs: string[]): Promise<DaemonProcess> {
    await this.initDaemon(name, replicaIds, nodeArgs);
    return this.launchDaemon(name);
  }

  /**
   * `tessera init` of daemon `name` (see `startDaemon`) without starting it; the replicas need only be reserved.
   * Returns its node id.
   */
  async initDaemon(name: string, replicaIds: string[], nodeArgs: string[]): Promise<string> {
    const home = join(this.dir, name);
    mkdirSync(home, { recursive: true });
    const urlOf = (id: string) => this.replicas.get(id)?.url ?? `http://127.0.0.1:${this.reserved.get(id)!}`;
    const [first, ...others] = replicaIds.map(urlOf);
    const joinArgs = ["--coordinator", first!, ...(others.length > 0 ? ["--coordinator-replicas", others.join(",")] : [])];
    const init = new ManagedProcess(`${name}-init`, process.execPath, [TESSERA_BIN, "init", "--home", home, ...joinArgs, ...nodeArgs], { env: ENV });
    const { code } = await init.exited;
    if (code !== 0) throw new Error(`${name}-init failed:\n${init.logText}`);
    const id = init.logText.match(/\b([0-9a-f]{64})\b/)![1]!;
    this.initialised.set(name, { id, replicaIds });
    return id;
  }

  /** Starts daemon `name`, initialised by `initDaemon`; waits until the first of its replicas shows it online. */
  async launchDaemon(name: string): Promise<DaemonProcess> {
    const { id, replicaIds } = this.initialised.get(name)!;
    const daemon = { name, id, replicaIds, process: this.launch(name) };
    this.daemons.set(name, daemon);
    await this.untilOnline(daemon);
    return daemon;
  }

  /** Starts a stopped or killed daemon again on its own home (the same key); waits until a live replica of its list shows it online. */
  async restartDaemon(name: string): Promise<void> {
    const daemon = this.daemons.get(name)!;
    if (daemon.process.running) throw new Error(`${name} is still running`);
    daemon.process = this.launch(name);
    await this.untilOnline(daemon);
  }

  private launch(name: string): ManagedProcess {
    return new ManagedProcess(name, process.execPath, [TESSERA_BIN, "start", "--home", join(this.dir, name)], { env: ENV, logFile: join(this.dir, `${name}.log`) });
  }

  private async untilOnline(daemon: DaemonProcess): Promise<void> {
    const live = () => daemon.replicaIds.filter((r) => this.replicas.get(r)!.process.running);
    await waitUntil(async () => !daemon.process.running || (await Promise.all(live().map((r) => this.nodeStatus(r, daemon.id)))).includes("online"), 60_000);
    if (!daemon.process.running) throw new Error(`${daemon.name} exited during start:\n${daemon.process.logText}`);
  }

  /** The node's status as replica `replicaId` shows it (GET /api/v1/nodes/:id), or undefined when it does not know it. */
  async nodeStatus(replicaId: string, nodeId: string): Promise<string | undefined> {
    const res = await fetch(`${this.replicas.get(replicaId)!.url}/api/v1/nodes/${nodeId}`).catch(() => undefined);
    return res?.ok ? ((await res.json()) as { status: string }).status : undefined;
  }

  /** Every process's recent output, for a failing test's message. */
  logs(): string {
    return [...this.replicas.values(), ...this.daemons.values()].map((p) => `--- ${p.process.name} ---\n${p.process.logText.slice(-2500)}`).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all([...this.daemons.values()].map((d) => d.process.stop(5_000)));
    await Promise.all([...this.replicas.values()].map((r) => r.process.stop(5_000)));
    await this.database.drop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}
