import { join } from "node:path";
import type { NodeView } from "@tessera/protocol";
import { ManagedProcess, TESSERA_BIN, freePort, waitUntil } from "@tessera/testkit";

/** A job as GET /api/v1/jobs/:id shows it once it has ended. */
export interface EndedJob {
  id: string;
  node_id: string | null;
  status: string;
  error?: string;
}

/** The environment every process runs in: none of the caller's Tessera settings leak in. */
/** A per-client rate limit no test client reaches. */
const UNLIMITED_PER_MINUTE = 1_000_000;

const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };

/**
 * A coordinator and node daemons as real processes, each daemon on its own home under `dir`, every node its own
 * operator. Unlike testkit's startCluster, every node is made by `tessera init` with its own flags (its backend, its
 * scoring) before the coordinator starts, so the coordinator's flags can name node ids (`--reference-node`).
 */
export class ProcessNetwork {
  /** The running daemons by name, in the order they started. */
  readonly daemons = new Map<string, { id: string; process: ManagedProcess }>();
  private coordinator: ManagedProcess | undefined;

  private constructor(
    readonly dir: string,
    readonly url: string,
  ) {}

  /** A network whose coordinator will listen on a free port of 127.0.0.1; nothing runs yet. */
  static async onFreePort(dir: string): Promise<ProcessNetwork> {
    return new ProcessNetwork(dir, `http://127.0.0.1:${await freePort()}`);
  }

  /** `tessera init` of the node `name` (home `dir/name`) with `args`; returns the node id it printed. */
  async initNode(name: string, args: string[]): Promise<string> {
    const init = new ManagedProcess(`${name}-init`, process.execPath, [TESSERA_BIN, "init", "--home", join(this.dir, name), "--coordinator", this.url, ...args], { env: ENV });
    const { code } = await init.exited;
    if (code !== 0) throw new Error(`${name}-init failed:\n${init.logText}`);
    return init.logText.match(/\b([0-9a-f]{64})\b/)![1]!;
  }

  /**
   * Starts the open coordinator with `coordinatorArgs`, then each initialised node's daemon, each online before the next.
   * The test client is one open client polling every job it sends every 50 ms, so the coordinator's per-client rate
   * limit (600 a minute by default) is lifted: a slow machine's longer jobs would otherwise trip it (`rate_limited`).
   */
  async start(coordinatorArgs: string[], ids: Record<string, string>): Promise<void> {
    this.coordinator = new ManagedProcess(
      "coordinator",
      process.execPath,
      [TESSERA_BIN, "coordinator", "start", "--open", "--port", this.url.split(":").at(-1)!, "--data-dir", join(this.dir, "coordinator"), "--rate-limit", String(UNLIMITED_PER_MINUTE), ...coordinatorArgs],
      { env: ENV, logFile: join(this.dir, "coordinator.log") },
    );
    await this.coordinator.waitFor(/listening on/);
    for (const [name, id] of Object.entries(ids)) {
      const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, "start", "--home", join(this.dir, name)], { env: ENV, logFile: join(this.dir, `${name}.log`) });
      this.daemons.set(name, { id, process: proc });
      await waitUntil(async () => (await this.nodeView(id).catch(() => undefined))?.status === "online", 60_000);
    }
  }

  async nodeView(id: string): Promise<NodeView> {
    return (await (await fetch(`${this.url}/api/v1/nodes/${id}`)).json()) as NodeView;
  }

  /**
   * Sends a greedy chat job (pinned to `nodeId` when given; under `responseFormat` when given) and waits up to 60 s
   * for it to complete or fail.
   */
  async job(options: { model: string; content: string; maxTokens: number; nodeId?: string; responseFormat?: unknown }): Promise<EndedJob> {
    const created = await fetch(`${this.url}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: options.model,
        messages: [{ role: "user", content: options.content }],
        max_tokens: options.maxTokens,
        temperature: 0,
        ...(options.nodeId ? { node_id: options.nodeId } : {}),
        ...(options.responseFormat ? { response_format: options.responseFormat } : {}),
      }),
    });
    if (!created.ok) throw new Error(`POST /api/v1/jobs answered ${created.status}: ${await created.text()}`);
    const { id } = (await created.json()) as { id: string };
    let view: EndedJob = { id, node_id: null, status: "pending" };
    await waitUntil(async () => {
      view = (await (await fetch(`${this.url}/api/v1/jobs/${id}`)).json()) as EndedJob;
      return view.status === "completed" || view.status === "failed";
    }, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}: job ${id} is still ${view.status} (node ${view.node_id ?? "none"}); what the coordinator logged of it:\n${this.logLinesOf(id)}`);
    });
    return view;
  }

  /** The coordinator's log lines that name `jobId`, and its last lines, for a failure's message. */
  private logLinesOf(jobId: string): string {
    const lines = this.coordinator?.logText.split("\n") ?? [];
    return [...lines.filter((line) => line.includes(jobId)), "--- last lines ---", ...lines.slice(-30)].join("\n");
  }

  /** Stops whatever started: the daemons, then the coordinator. */
  async stop(): Promise<void> {
    await Promise.all([...this.daemons.values()].map((d) => d.process.stop(5_000)));
    await this.coordinator?.stop(5_000);
  }
}
