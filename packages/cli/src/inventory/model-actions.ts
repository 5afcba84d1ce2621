import { join } from "node:path";
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
  howToAddModel,
  installGguf,
  isModelReference,
  parseModelReference,
  parseSha256Flag,
  readLivePid,
  writeModelPath,
  type InventoryRow,
  type VramTier,
} from "@tessera/node";
import { CommandModelName, modelIdFromFileName, type Hardware, type NodeCommandType, type NodeCommandView, type Signer, TesseraError, isErrorCode } from "@tessera/protocol";
import { OperatorClient } from "./operator-client.js";
import { ProgressBar, formatBytes, type ProgressSink } from "./progress-bar.js";

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
  /** The backend kind the config selects (probed for `auto`) without opening it; default: open it and ask. */
  backendKind?(): Promise<string>;
  /** The Hugging Face hub for `hf:` references (HF_ENDPOINT, HF_TOKEN). */
  hub?: { endpoint: string; token?: string | undefined };
  /** Ctrl-C: stops a download, keeping its `.part` for the next run. */
  signal?: AbortSignal;
  /** Free bytes where the models folder is (tests); default statfs. */
  freeBytes?(dir: string): Promise<number | undefined>;
}

export interface ModelActionResult {
  model: string;
  /** `download`: a GGUF fetched into the models folder for the embedded engine. */
  via: "daemon" | "backend" | "download";
}

async function kindOf(deps: ModelActionDeps): Promise<string> {
  if (deps.backendKind) return deps.backendKind();
  const backend = await deps.openBackend();
  try {
    return backend.kind;
  } finally {
    await backend.close?.();
  }
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

export async function installModelAction(deps: ModelActionDeps, rawName: unknown, options: { force?: boolean; sha256?: unknown } = {}): Promise<ModelActionResult> {
  if (typeof rawName === "string" && isModelReference(rawName)) return installReferenceAction(deps, rawName.trim(), options);
  if (options.sha256 !== undefined) throw new TesseraError("bad_request", "--sha256 checks a GGUF given by URL or hf: reference, not a backend model name");
  const name = parseModelName(rawName);
  if (deps.backendKind && (await deps.backendKind()) === "embedded") {
    throw new TesseraError(
      "bad_request",
      `the embedded engine installs GGUF files, not ${JSON.stringify(name)}: give a URL or a Hugging Face reference (hf:owner/repo:Q4_K_M or hf:owner/repo/file.gguf); \`${deps.command ?? "tessera"} model recommend\` suggests one`,
    );
  }
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

/**
 * A GGUF reference (URL or `hf:`): downloaded into `<data dir>/models` for the embedded engine and made node.toml's
 * `model_path`, so the node serves it from its next start (see packages/node/src/model-download/design.md). Ollama
 * takes `hf:owner/repo:QUANT` as its own `hf.co/owner/repo:QUANT`; servers that load their model at start get how.
 */
async function installReferenceAction(deps: ModelActionDeps, raw: string, options: { force?: boolean; sha256?: unknown }): Promise<ModelActionResult> {
  const ref = parseModelReference(raw);
  const sha256 = parseSha256Flag(options.sha256);
  const kind = await kindOf(deps);
  const tessera = deps.command ?? "tessera";
  if (kind === "ollama") {
    if (ref.kind === "hf-quant" && sha256 === undefined) return installModelAction(deps, `hf.co/${ref.repo}:${ref.quant}`, { force: options.force === true });
    throw new TesseraError(
      "bad_request",
      `backend ollama pulls from its library or the hub, not ${raw}: give hf:owner/repo:QUANT (pulled as hf.co/owner/repo:QUANT, Ollama checks it), or download the GGUF and \`ollama create NAME -f Modelfile\` with \`FROM ./file.gguf\`${sha256 !== undefined ? " (--sha256 is for the embedded engine's downloads)" : ""}`,
    );
  }
  if (kind !== "embedded") throw new TesseraError("bad_request", `backend ${kind} cannot install ${raw}: ${howToAddModel(kind, raw)}`);

  const hardware = await deps.hardware();
  const modelsDir = join(deps.config.paths.dataDir, "models");
  const bar = new ProgressBar(deps.out, deps.nowMs, { pipeEveryMs: 5000 });
  let advertised = true;
  let result;
  try {
    result = await installGguf({
      reference: raw,
      modelsDir,
      hubEndpoint: deps.hub?.endpoint ?? "https://huggingface.co",
      ...(deps.hub?.token ? { hubToken: deps.hub.token } : {}),
      ...(sha256 !== undefined ? { sha256 } : {}),
      fetch: deps.fetch,
      sleep: deps.sleep,
      onProgress: (p) => bar.update(p),
      beforeDownload: (resolved) => {
        const fit = checkModelFit(resolved.fileName.replace(/\.gguf$/i, ""), { hardware, ...(resolved.sizeBytes !== undefined ? { sizeBytes: resolved.sizeBytes } : {}) });
        if (fit.fits) return;
        deps.err.write(`warning: ${describeMisfit(fit)}\n`);
        if (!options.force) throw new TesseraError("bad_request", `${describeMisfit(fit)}; not installed (--force installs it anyway, but it is never advertised)`);
        advertised = false;
      },
      ...(deps.signal ? { signal: deps.signal } : {}),
      ...(deps.freeBytes ? { freeBytes: deps.freeBytes } : {}),
    });
  } finally {
    bar.done();
  }
  const checked = result.sha256Checked ? "checked against the published sha256" : "no sha256 published: computed";
  deps.out.write(
    result.alreadyInstalled
      ? `already installed: ${result.path} (${formatBytes(result.sizeBytes)}, sha256 ${result.sha256}, ${checked})\n`
      : `installed ${result.path} (${formatBytes(result.sizeBytes)}${result.resumedFromBytes > 0 ? `, resumed from ${formatBytes(result.resumedFromBytes)}` : ""}, sha256 ${result.sha256}, ${checked})\n`,
  );
  if (!advertised) {
    deps.err.write(`warning: it does not fit this node: node.toml is unchanged and it is never advertised\n`);
    return { model: result.modelId, via: "download" };
  }
  const previous = deps.config.model_path;
  writeModelPath(deps.config.paths.configFile, result.path);
  const previousId = previous ? modelIdOfFile(previous) : undefined;
  // The embedded engine serves one file: a listed served_models swaps the old file's id for the new one.
  if (deps.config.served_models.length > 0) {
    updateToml(deps, [...deps.config.served_models.filter((m) => m !== previousId && m !== result.modelId), result.modelId]);
  }
  if (deps.config.sources.model_path === "flag" || deps.config.sources.model_path === "env") {
    deps.err.write(`warning: model_path comes from the ${deps.config.sources.model_path === "flag" ? "--model flag" : "TESSERA_MODEL_PATH env var"}, which overrides node.toml\n`);
  }
  const home = deps.config.paths.home !== undefined ? ` --home ${deps.config.paths.home}` : "";
  const pid = readLivePid(deps.config.paths.pidFile);
  deps.out.write(
    `node.toml: model_path is now this file; the node advertises "${result.modelId}" ` +
      (pid === undefined
        ? `from its next start (\`${tessera} start${home}\`)\n`
        : `once it restarts: the running daemon (pid ${pid}) still serves ${previousId ?? "its old model"}; \`${tessera} stop${home}\`, then \`${tessera} start${home}\`\n`),
  );
  return { model: result.modelId, via: "download" };
}

/** The id the embedded engine advertises for a file (embedded-backend.ts: the name without `.gguf`). */
function modelIdOfFile(path: string): string {
  return modelIdFromFileName((path.split(/[\\/]/).pop() ?? path).replace(/\.gguf$/i, ""));
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
  /** The backend the recommendation is for; `installs` false: it loads models itself (then `tiers` is empty). */
  backend: string;
  installs: boolean;
  /** For a backend that cannot install: how to add a model to it. */
  howTo?: string;
  /** Every tier's default as this backend installs it (an Ollama name, or a GGUF reference for the embedded engine). */
  tiers: Array<{ tier: VramTier; model: string; fits: boolean; thisNode: boolean }>;
}

export function recommend(hardware: Hardware, backend = "ollama"): Recommendation {
  const tier = hardware.tier ?? tierForVram(hardware.gpus.reduce((s, g) => s + g.vram_mb, 0));
  const base = { tier, memoryMb: memoryBudgetMb(hardware), backend };
  if (backend !== "ollama" && backend !== "embedded") return { ...base, installs: false, howTo: howToAddModel(backend, "MODEL"), tiers: [] };
  return {
    ...base,
    installs: true,
    tiers: VRAM_TIERS.map((spec) => {
      const model = backend === "embedded" ? spec.recommended.gguf : spec.recommended.model;
      // The fit reads size and quantisation from the name: `owner/Repo-8B-GGUF:Q4_K_M` without the `hf:` scheme.
      return { tier: spec.tier, model, fits: checkModelFit(model.replace(/^hf:/, ""), { hardware }).fits, thisNode: spec.tier === tier };
    }),
  };
}
