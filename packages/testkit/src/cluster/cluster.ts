import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.js";
import { ManagedProcess } from "./managed-process.js";
import { modelIdFromFileName } from "@tessera/protocol";

/** The `tessera` command of this checkout, run by the same Node as the test. */
export const TESSERA_BIN = fileURLToPath(new URL("../../../cli/bin/tessera.js", import.meta.url));

export interface ClusterOptions {
  /** Number of node daemons (default 1). */
  nodes?: number;
  /** GGUF file every daemon serves on the embedded engine; leave out and pass backend flags in `nodeArgs` instead. */
  modelPath?: string;
  coordinatorArgs?: string[];
  nodeArgs?: string[];
  /** Extra environment for every process. */
  env?: NodeJS.ProcessEnv;
  /** Keep the working dir after stop (for debugging a failure). */
  keepDir?: boolean;
  /** Extra Node flags for the processes (e.g. `--cpu-prof` to see where a benchmark's time goes). */
  nodeFlags?: { coordinator?: string[]; node?: string[] };
}

export interface AddNodeOptions {
  /** Serve this GGUF file on the embedded engine instead of the cluster's. */
  modelPath?: string;
  /** Added to the cluster's `nodeArgs`. */
  nodeArgs?: string[];
  /** Called with the daemon's home after `tessera init`, before it starts (to put files in its data dir, say). */
  prepareHome?: (home: string) => void;
}

export interface ClusterNode {
  name: string;
  home: string;
  id: string;
  process: ManagedProcess;
}

export interface Cluster {
  url: string;
  dir: string;
  coordinator: ManagedProcess;
  nodes: ClusterNode[];
  /** The model id the daemons serve (the GGUF file's stem), when `modelPath` was given. */
  model: string | undefined;
  /**
   * Starts one more daemon; `modelPath` serves another GGUF file on the embedded engine instead of the cluster's (an
   * embedding model beside a chat model, say), `nodeArgs` are added to the cluster's.
   */
  addNode(options?: AddNodeOptions): Promise<ClusterNode>;
  /** Starts a stopped or killed daemon again on its own home (same key, so the same node id). */
  restartNode(node: ClusterNode): Promise<void>;
  /** Every process's recent output, for a failing test's message. */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A coordinator and N node daemons as real processes on free ports, each daemon with its own --home. The
 * coordinator runs open (no API key) so tests use it like `tessera up`.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-cluster-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Daemons serve whenever they run unless a test asks for the idle policy (`--idle-mode when-idle` or its own env):
  // on a desktop, a developer typing while the suite runs must not drain the test nodes.
  const env = { ...process.env, TESSERA_IDLE_MODE: "always", ...options.env };
  const coordinator = new ManagedProcess(
    "coordinator",
    process.execPath,
    [...(options.nodeFlags?.coordinator ?? []), TESSERA_BIN, "coordinator", "start", "--port", String(port), "--data-dir", join(dir, "coordinator"), "--open", ...(options.coordinatorArgs ?? [])],
    { env, logFile: join(dir, "coordinator.log") },
  );
  await coordinator.waitFor(/listening on/);
  const model = options.modelPath === undefined ? undefined : modelIdFromFileName(options.modelPath.replace(/^.*\//, "").replace(/\.gguf$/i, ""));
  const backendArgs = options.modelPath ? ["--backend", "embedded", "--model", options.modelPath] : [];
  const nodes: ClusterNode[] = [];

  /** Each node's own backend and extra arguments, kept for a restart. */
  const nodeArgsOf = new Map<string, string[]>();

  async function launch(name: string, home: string, id: string): Promise<ManagedProcess> {
    const proc = new ManagedProcess(
      name,
      process.execPath,
      [...(options.nodeFlags?.node ?? []), TESSERA_BIN, "start", "--home", home, ...(nodeArgsOf.get(name) ?? [...backendArgs, ...(options.nodeArgs ?? [])])],
      { env, logFile: join(dir, `${name}.log`) },
    );
    try {
      await waitUntil(async () => (await nodeSessionOpen(url, id)) || !proc.running, 60_000);
    } catch (err) {
      proc.kill("SIGKILL");
      throw err;
    }
    if (!proc.running) throw new Error(`${name} exited during start:\n${proc.logText}`);
    return proc;
  }

  async function addNode(extra: AddNodeOptions = {}): Promise<ClusterNode> {
    const name = `node${nodes.length + 1}`;
    const backend = extra.modelPath ? ["--backend", "embedded", "--model", extra.modelPath] : backendArgs;
    nodeArgsOf.set(name, [...backend, ...(options.nodeArgs ?? []), ...(extra.nodeArgs ?? [])]);
    const home = join(dir, name);
    mkdirSync(home, { recursive: true });
    const init = new ManagedProcess(`${name}-init`, process.execPath, [TESSERA_BIN, "init", "--home", home, "--coordinator", url], { env });
    const { code } = await init.exited;
    if (code !== 0) throw new Error(`tessera init failed:\n${init.logText}`);
    const id = init.logText.match(/\b([0-9a-f]{64})\b/)?.[1];
    if (!id) throw new Error(`tessera init printed no node id:\n${init.logText}`);
    extra.prepareHome?.(home);
    const node = { name, home, id, process: await launch(name, home, id) };
    nodes.push(node);
    return node;
  }

  async function restartNode(node: ClusterNode): Promise<void> {
    if (node.process.running) throw new Error(`${node.name} is still running`);
    node.process = await launch(node.name, node.home, node.id);
  }

  const count = options.nodes ?? 1;
  try {
    for (let i = 0; i < count; i++) await addNode();
  } catch (err) {
    await Promise.all([coordinator.stop(2_000), ...nodes.map((n) => n.process.stop(2_000))]);
    throw err;
  }

  return {
    url,
    dir,
    coordinator,
    nodes,
    model,
    addNode,
    restartNode,
    logs: () => [coordinator, ...nodes.map((n) => n.process)].map((p) => `--- ${p.name} ---\n${p.logText.slice(-3000)}`).join("\n"),
    async stop() {
      await Promise.all(nodes.map((n) => n.process.stop(5_000)));
      await coordinator.stop(5_000);
      if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Online, as the public status endpoint says (the daemon registers, then opens its session). */
async function nodeSessionOpen(url: string, id: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/api/v1/nodes/${id}/status`);
    if (!res.ok) return false;
    return ((await res.json()) as { status: string }).status === "online";
  } catch {
    return false;
  }
}

export async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
