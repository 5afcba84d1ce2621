import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, loadCoordinatorConfig, startCoordinator, type RunningCoordinator } from "@tessera/coordinator";
import {
  createNodeLogger,
  initNode,
  loadNodeConfig,
  signerFromKeyFile,
  startDaemon,
  type DaemonHandle,
  type NodeConfig,
  type SettingFlags,
} from "@tessera/node";
import type { Hardware, Signer } from "@tessera/protocol";
import { startFakeOllama, type FakeOllama, type FakeOllamaModel } from "@tessera/testkit";

/**
 * A real coordinator (HTTP + WebSocket on a free port), a fake Ollama speaking its real wire format, and a node
 * daemon in-process joined to both over real sockets; the node's hardware is injected (an 8 GiB GPU by default).
 */
export const GPU_8GB: Hardware = { cpu_cores: 8, ram_mb: 32768, gpus: [{ vendor: "nvidia", name: "RTX 4060", vram_mb: 8188 }], tier: ">=8gb" };

export const REGISTRY: FakeOllamaModel[] = [
  { name: "qwen2.5:0.5b", sizeBytes: 397_821_319, parameterSize: "494M", quantization: "Q4_K_M" },
  { name: "llama3.3:70b", sizeBytes: 42_520_413_916, parameterSize: "70.6B", quantization: "Q4_K_M" },
  { name: "llama3.1:8b", sizeBytes: 4_920_753_328, parameterSize: "8.0B", quantization: "Q4_K_M" },
];

export interface InventoryCluster {
  coordinator: RunningCoordinator;
  ollama: FakeOllama;
  daemon: DaemonHandle;
  config: NodeConfig;
  signer: Signer;
  nodeId: string;
  logLines: string[];
  /** Reports the daemon sent to the coordinator, in order. */
  reports: Array<{ path: string; body: Record<string, unknown> }>;
  home: string;
  close(): Promise<void>;
}

export async function startInventoryCluster(options: {
  installed?: FakeOllamaModel[];
  settings?: SettingFlags;
  hardware?: Hardware;
  withDaemon?: boolean;
  /** Runs after the coordinator is up and the node's key exists, before the daemon starts. */
  beforeDaemon?: (coordinator: Awaited<ReturnType<typeof startCoordinator>>, nodeId: string) => Promise<void>;
} = {}): Promise<InventoryCluster> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-inventory-"));
  const coordinator = await startCoordinator(
    { ...loadCoordinatorConfig({ dataDir: join(dir, "coordinator"), port: "0", host: "127.0.0.1", open: true }, {}) },
    { logger: createLogger("silent") },
  );
  const ollama = await startFakeOllama({
    installed: options.installed ?? [{ name: "qwen2.5:1.5b", sizeBytes: 986_000_000, parameterSize: "1.5B" }],
    registry: REGISTRY,
    pullSteps: 6,
    pullStepMs: 30,
  });
  const home = join(dir, "node");
  initNode({
    home,
    env: {},
    settings: { coordinator_url: coordinator.url, backend: "ollama", ollama_host: ollama.url, heartbeat_interval_s: 3600, ...options.settings },
  });
  const config = loadNodeConfig({ home, env: {}, requireConfigFile: true });
  const signer = signerFromKeyFile(config.paths.keyFile);
  const logLines: string[] = [];
  const reports: InventoryCluster["reports"] = [];
  const { logger } = createNodeLogger({ level: "info", stdout: { write: (line: string) => logLines.push(line) } });
  await options.beforeDaemon?.(coordinator, signer.publicKeyHex);
  const fetchAndRecord: typeof fetch = async (input, init) => {
    const url = String(input);
    if (url.includes("/commands/") && typeof init?.body === "string") reports.push({ path: new URL(url).pathname, body: JSON.parse(init.body) });
    return fetch(input, init);
  };
  const daemon =
    options.withDaemon === false
      ? undefined
      : await startDaemon(config, {
          logger,
          signer,
          fetch: fetchAndRecord,
          detectHardware: async () => options.hardware ?? GPU_8GB,
          gpuStats: async () => [],
        });
  await daemon?.ready;
  return {
    coordinator,
    ollama,
    daemon: daemon as DaemonHandle,
    config,
    signer,
    nodeId: signer.publicKeyHex,
    logLines,
    reports,
    home,
    async close() {
      await daemon?.stop();
      await coordinator.close();
      await ollama.http.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
