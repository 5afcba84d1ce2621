import { cpus, totalmem } from "node:os";
import { type Hardware, MAX_MODELS_PER_NODE, NODE_MODEL_ID_PATTERN, type NodeRegister, type NodeRegistered, type ServedModel, type Signer } from "@tessera/protocol";
import type { BackendModel } from "./backends/adapter.js";
import { generationFeatures } from "./backends/backend-features.js";
import type { NodeConfig } from "./config.js";
import type { NodeIdentity } from "./identity.js";
import { signedPost, type FetchLike } from "./signed-http.js";

export const NODE_VERSION = "0.1.0";
export const REGISTER_PATH = "/api/v1/nodes/register";
export const HEARTBEAT_PATH = "/api/v1/nodes/heartbeat";

export interface ServedModelsResult {
  served: ServedModel[];
  /** Configured in served_models but absent from the backend: warned about, never advertised. */
  missing: string[];
  /** Models the coordinator would refuse (an id outside the model-id charset, or past the per-node cap), each with why. */
  refused: string[];
}

/**
 * served_models ∩ backend models; an empty served_models means everything the backend has. Coordinators refuse a
 * registration with an invalid model id or more than MAX_MODELS_PER_NODE models, so those are left out here, with a
 * reason the daemon prints, rather than making the whole node unable to register.
 */
export function resolveServedModels(
  configured: readonly string[],
  backendModels: readonly BackendModel[],
  backendKind: string,
): ServedModelsResult {
  const byId = new Map(backendModels.map((m) => [m.id, m]));
  const wanted = configured.length > 0 ? configured : backendModels.map((m) => m.id);
  const served: ServedModel[] = [];
  const missing: string[] = [];
  const refused: string[] = [];
  for (const id of wanted) {
    const model = byId.get(id);
    if (!model) {
      missing.push(id);
      continue;
    }
    if (!NODE_MODEL_ID_PATTERN.test(id)) {
      refused.push(`${JSON.stringify(id.slice(0, 200))} is not a model id coordinators accept (a letter or digit, then letters, digits and . _ : / @ + -, at most 128); not advertised`);
      continue;
    }
    if (served.length === MAX_MODELS_PER_NODE) {
      refused.push(`${id}: a node may announce at most ${MAX_MODELS_PER_NODE} models; list the ones to serve in served_models; not advertised`);
      continue;
    }
    served.push({
      id,
      backend: backendKind,
      ...(model.sizeBytes !== undefined ? { size_bytes: model.sizeBytes } : {}),
      ...(model.scoring ? { scoring: true } : {}),
      ...(model.scoring && model.constrainedScoring ? { constrained_scoring: true } : {}),
      ...(model.sha256 !== undefined ? { sha256: model.sha256 } : {}),
      features: model.features ?? generationFeatures(backendKind),
    });
  }
  return { served, missing, refused };
}

/**
 * Brings the served models' file identities (`sha256`) up to date with the backend's latest list, in place: a file
 * replaced under the same name (a GGUF overwritten, an `ollama pull` of a newer build) is another file, and a model
 * whose identity could not be read at start (Ollama's `/api/show` failed) gains it. A model the backend no longer lists
 * keeps what it had (served-list changes are the command executor's). Returns the ids whose identity changed.
 */
export function refreshModelFiles(served: ServedModel[], backendModels: readonly BackendModel[]): string[] {
  const byId = new Map(backendModels.map((m) => [m.id, m]));
  const changed: string[] = [];
  for (const model of served) {
    const backend = byId.get(model.id);
    if (!backend || backend.sha256 === model.sha256) continue;
    if (backend.sha256 === undefined) delete model.sha256;
    else model.sha256 = backend.sha256;
    changed.push(model.id);
  }
  return changed;
}

/** Coarse capability from the OS alone (no GPU probing): the fallback when no hardware detector is injected. */
export function basicHardware(): Hardware {
  return { cpu_cores: Math.max(1, cpus().length), ram_mb: Math.floor(totalmem() / 2 ** 20), gpus: [], tier: "cpu" };
}

export interface RegisterNodeInput {
  /** The coordinator to register with; the config's `coordinator_url` when absent (a daemon passes the one in use). */
  baseUrl?: string;
  signer: Signer;
  models: ServedModel[];
  hardware: Hardware;
  fetch?: FetchLike;
  nowSeconds?: () => number;
  signal?: AbortSignal;
  /** Node commands taken and not finished (see NodeRegister.running_commands). */
  runningCommands?: string[];
  /** The operator's delegation and a key hand-over, when there are (identity.ts). */
  identity?: NodeIdentity;
  /** Admits a new operator on a coordinator whose admission is `token` or `approval`. */
  joinToken?: string;
}

/** `POST /api/v1/nodes/register`, signed. Throws TesseraError with the coordinator's code on refusal. */
export async function registerNode(config: NodeConfig, input: RegisterNodeInput): Promise<NodeRegistered> {
  const body: NodeRegister = {
    type: "register",
    public_key: input.signer.publicKeyHex,
    version: NODE_VERSION,
    hardware: input.hardware,
    models: input.models,
    max_concurrency: config.max_concurrency,
    ...(input.runningCommands?.length ? { running_commands: input.runningCommands } : {}),
    ...(input.identity?.delegation ? { delegation: input.identity.delegation } : {}),
    ...(input.identity?.rotation ? { rotation: input.identity.rotation } : {}),
    ...(input.joinToken !== undefined ? { join_token: input.joinToken } : {}),
  };
  return signedPost<NodeRegistered>(
    {
      fetch: input.fetch ?? fetch,
      signer: input.signer,
      baseUrl: input.baseUrl ?? config.coordinator_url,
      nowSeconds: input.nowSeconds ?? (() => Math.floor(Date.now() / 1000)),
      signal: input.signal,
    },
    REGISTER_PATH,
    body,
  );
}
