import {
  type BackendAdapter,
  type NodeConfig,
  VRAM_TIERS,
  checkModelFit,
  describeMisfit,
  installModel,
  inventoryRows,
  nextServedModels,
  removeModel,
  tierForVram,
  memoryBudgetMb,
  writeServedModels,
  type InventoryRow,
  type VramTier,
} from "@tessera/node";
import { CommandModelName, type Hardware, type NodeCommandType, type NodeCommandView, type Signer, TesseraError, isErrorCode } from "@tessera/protocol";
import { OperatorClient } from "./operator-client.js";
import { ProgressBar, type ProgressSink } from "./progress-bar.js";

/**
 * `tessera model …` as functions with every seam injected (tests drive them against a real coordinator and a fake
 * Ollama). Install and remove go through the running daemon when the coordinator says the node is online — the
 * daemon pulls, edits served_models and re-syncs at once, and the CLI follows its progress — and straight to the
 * backend when the daemon is not running (node.toml is updated; the coordinator learns at the next start).
 */
export interface ModelActionDeps {
  config: NodeConfig;
  signer: Signer;
  fetch: typeof fetch;
  nowMs(): number;
  sleep(ms: number): Promise<void>;
  hardware(): Promise<Hardware>;
  openBackend(): Promise<BackendAdapter>;
  out: ProgressSink;
  err: ProgressSink;
  pollMs?: number;
  /** How the user runs this CLI (`tessera`, `npx tessera`, …), for the commands it suggests; default `tessera`. */
  command?: string;
}

export interface ModelActionResult {
  model: string;
  via: "daemon" | "backend";
}

export function parseModelName(raw: unknown): string {
  const parsed = CommandModelName.safeParse(typeof raw === "string" ? raw : "");
  if (!parsed.success) throw new TesseraError("bad_request", `invalid model name ${JSON.stringify(raw ?? "")}: give a name like qwen2.5:7b`);
  return parsed.data;
}

function client(deps: ModelActionDeps): OperatorClient {
  return new OperatorClient({ baseUrl: deps.config.coordinator_url, signer: deps.signer, fetch: deps.fetch, nowMs: deps.nowMs });
}

/** True when the daemon is connected to the coordinator (so it must do the work); notes why not otherwise. */
async function daemonOnline(deps: ModelActionDeps): Promise<boolean> {
  try {
    const status = await client(deps).nodeStatus();
    return status?.status === "online";
  } catch (err) {
    deps.err.write(`note: ${(err as Error).message}; working on the backend directly\n`);
    return false;
  }
}

export async function installModelAction(deps: ModelActionDeps, rawName: unknown, options: { force?: boolean } = {}): Promise<ModelActionResult> {
  const name = parseModelName(rawName);
  const hardware = await deps.hardware();
  const fit = checkModelFit(name, { hardware });
  if (!fit.fits) {
    deps.err.write(`warning: ${describeMisfit(fit)}\n`);
    if (!options.force) throw new TesseraError("bad_request", `${describeMisfit(fit)}; not installed (--force installs it anyway, but it is never advertised)`);
  }
  if (await daemonOnline(deps)) {
    if (!fit.fits) throw new TesseraError("bad_request", "the running daemon never installs a model that cannot fit; stop it to install with --force");
    await runThroughDaemon(deps, "model_install", name);
    deps.out.write(`installed ${name} through the running daemon; it is advertised now\n`);
    return { model: name, via: "daemon" };
  }
  const backend = await deps.openBackend();
  try {
    const bar = new ProgressBar(deps.out, deps.nowMs);
    const result = await installModel(backend, name, { hardware, force: options.force, onProgress: (p) => bar.update(p) });
    bar.done();
    if (result.fit.fits) updateToml(deps, nextServedModels(deps.config.served_models, { add: result.id }));
    else deps.err.write(`warning: ${describeMisfit(result.fit)}; installed but not advertised\n`);
    deps.out.write(`installed ${result.id} in ${backend.kind}; the daemon is not running: the coordinator learns of it at \`${deps.command ?? "tessera"} start\`\n`);
    return { model: result.id, via: "backend" };
  } finally {
    await backend.close?.();
  }
}

export async function removeModelAction(deps: ModelActionDeps, rawName: unknown): Promise<ModelActionResult> {
  const name = parseModelName(rawName);
  if (await daemonOnline(deps)) {
    await runThroughDaemon(deps, "model_remove", name);
    deps.out.write(`removed ${name} through the running daemon; it is no longer advertised\n`);
    return { model: name, via: "daemon" };
  }
  const backend = await deps.openBackend();
  try {
    const result = await removeModel(backend, name);
    updateToml(deps, nextServedModels(deps.config.served_models, { remove: result.id }));
    deps.out.write(`removed ${result.id} from ${backend.kind}\n`);
    return { model: result.id, via: "backend" };
  } finally {
    await backend.close?.();
  }
}

function updateToml(deps: ModelActionDeps, next: string[] | undefined): void {
  if (next === undefined) return;
  writeServedModels(deps.config.paths.configFile, next);
  if (deps.config.sources.served_models === "flag" || deps.config.sources.served_models === "env") {
    deps.err.write(`warning: served_models comes from the ${deps.config.sources.served_models}, which overrides node.toml\n`);
  }
}

/** Queues the command and follows it to its end, drawing the daemon's progress. */
async function runThroughDaemon(deps: ModelActionDeps, type: NodeCommandType, model: string): Promise<void> {
  const api = client(deps);
  const queued = await api.queueCommand(type, model);
  deps.out.write(`queued ${type.replace("model_", "")} of ${model} for the running daemon (command ${queued.id})\n`);
  const bar = new ProgressBar(deps.out, deps.nowMs);
  let view: NodeCommandView | undefined = queued;
  while (view && view.status !== "succeeded" && view.status !== "failed") {
    await deps.sleep(deps.pollMs ?? 200);
    view = (await api.listCommands()).find((c) => c.id === queued.id);
    if (view?.status === "running" && view.detail) {
      bar.update({ status: view.detail, ...(view.completed_bytes !== undefined ? { completedBytes: view.completed_bytes } : {}), ...(view.total_bytes !== undefined ? { totalBytes: view.total_bytes } : {}) });
    }
  }
  bar.done();
  if (!view) throw new TesseraError("internal_error", `command ${queued.id} disappeared from the coordinator`);
  if (view.status === "failed") {
    const [code, ...rest] = (view.error ?? "internal_error: failed").split(": ");
    throw new TesseraError(isErrorCode(code) ? code : "internal_error", rest.join(": ") || (view.error ?? "failed"));
  }
}

export interface ModelListJson {
  name: string;
  size_bytes: number | null;
  backend: string;
  status: InventoryRow["status"];
  served: boolean;
  fits: boolean;
  required_mb: number | null;
}

export async function listModelsAction(deps: Pick<ModelActionDeps, "config" | "hardware" | "openBackend">): Promise<ModelListJson[]> {
  const [hardware, backend] = await Promise.all([deps.hardware(), deps.openBackend()]);
  try {
    const rows = inventoryRows(deps.config.served_models, await backend.listModels(), backend.kind, hardware);
    return rows.map((r) => ({
      name: r.name,
      size_bytes: r.sizeBytes ?? null,
      backend: r.backend,
      status: r.status,
      served: r.served,
      fits: r.fit.fits,
      required_mb: r.fit.known ? r.fit.requiredMb : null,
    }));
  } finally {
    await backend.close?.();
  }
}

export interface Recommendation {
  tier: VramTier;
  memoryMb: number;
  /** Every tier's default, marking the node's own and whether each fits. */
  tiers: Array<{ tier: VramTier; model: string; fits: boolean; thisNode: boolean }>;
}

export function recommend(hardware: Hardware): Recommendation {
  const tier = hardware.tier ?? tierForVram(hardware.gpus.reduce((s, g) => s + g.vram_mb, 0));
  return {
    tier,
    memoryMb: memoryBudgetMb(hardware),
    tiers: VRAM_TIERS.map((spec) => ({
      tier: spec.tier,
      model: spec.recommended.model,
      fits: checkModelFit(spec.recommended.model, { hardware }).fits,
      thisNode: spec.tier === tier,
    })),
  };
}
