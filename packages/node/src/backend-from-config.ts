import { TesseraError } from "@tessera/protocol";
import type { BackendAdapter } from "./backends/adapter.js";
import { createBackendAdapter } from "./backends/create-backend-adapter.js";
import { type ProbeResult, probeBackends } from "./backends/probe-backends.js";
import { createStageOnlyBackend } from "./backends/stage-only/stage-only-backend.js";
import type { NodeConfig } from "./config.js";
import type { NodeLogger } from "./logger.js";
import type { FetchLike } from "./signed-http.js";

/** What a backend factory gets from the daemon. */
export interface BackendFactoryContext {
  fetch: FetchLike;
  logger: NodeLogger;
}
export type BackendFactory = (config: NodeConfig, context: BackendFactoryContext) => Promise<BackendAdapter>;

/** Which backend the config selects (probing for `auto`), without opening it: `tessera model install` needs only the kind. */
export function probeConfiguredBackend(config: NodeConfig, fetch: typeof globalThis.fetch): Promise<ProbeResult> {
  return probeBackends({
    backend: config.backend,
    hosts: {
      ollama: config.ollama_host,
      vllm: config.vllm_host,
      sglang: config.sglang_host,
      max: config.max_host,
      llamaServer: config.llama_server_host,
    },
    openaiCompatibleHost: config.openai_compatible_host || undefined,
    fetch,
    timeoutMs: config.probe_timeout_ms,
  });
}

/**
 * The production backend factory: the `backend` setting (or the probe, for `auto`) picks the kind; the config's
 * hosts, keys and timeouts are handed to the adapter as plain values. Embedded is the fallback and needs
 * `model_path`; it is loaded here so a bad model file stops the daemon at start with a clear error. A node given only a
 * `stage_model` serves layer spans and no whole model (stage-only-backend.ts).
 */
export async function createBackendFromConfig(config: NodeConfig, context: BackendFactoryContext): Promise<BackendAdapter> {
  const { logger } = context;
  const fetch = context.fetch as typeof globalThis.fetch;
  const probe = await probeConfiguredBackend(config, fetch);
  for (const attempt of probe.attempts) {
    logger.debug(`probe ${attempt.kind} ${attempt.url}: ${attempt.ok ? "answered" : "no"} (${attempt.detail})`);
  }
  if (!probe.overridden) {
    logger.info(probe.kind === "embedded" ? "probe: no local inference server answered; using the embedded engine" : `probe: ${probe.kind} answered at ${probe.baseURL}`);
  }
  if (probe.kind === "embedded") {
    if (!config.model_path && config.stage_model) {
      logger.info("no whole model to serve (no --model, no local inference server): this node offers layer spans only");
      return createStageOnlyBackend();
    }
    if (!config.model_path) {
      const tried = probe.attempts.map((a) => `${a.kind} ${a.url}: ${a.detail}`).join("; ");
      throw new TesseraError(
        "bad_request",
        `the embedded backend needs a GGUF model: set --model, TESSERA_MODEL_PATH or model_path in node.toml` +
          (tried ? ` (no local server answered: ${tried})` : ""),
      );
    }
    // Imported here, not at the top: node-llama-cpp is heavy and every other backend (and CLI command) can skip it.
    const { createEmbeddedBackend } = await import("./backends/embedded/index.js");
    const { gpuRuntimeDir } = await import("./gpu-runtime/gpu-runtime-record.js");
    const backend = createEmbeddedBackend({
      modelPath: config.model_path,
      maxSequences: config.max_concurrency,
      gpuRuntimeDir: gpuRuntimeDir(config.paths.dataDir),
      maxVramFraction: config.limits.max_vram_fraction,
      log: (level, message) => logger[level](message),
    });
    await backend.load();
    return backend;
  }
  if (probe.kind === "openai-compatible" && !probe.baseURL) {
    throw new TesseraError(
      "bad_request",
      "backend openai-compatible needs a host: set --openai-compatible-host, TESSERA_OPENAI_COMPATIBLE_HOST or openai_compatible_host",
    );
  }
  const adapter = createBackendAdapter({
    kind: probe.kind,
    baseURL: probe.baseURL,
    vllmInstances: config.vllm_instances,
    ollamaKeepAlive: config.ollama_keep_alive,
    apiKey: config.backend_api_key || undefined,
    embeddingModels: config.embedding_models,
    ...(config.reference_scoring ? { referenceScoring: { eosTokenIds: config.score_eos_token_ids } } : {}),
    log: (level, message) => logger[level](message),
    fetch,
  });
  if (config.reference_scoring && !adapter?.score) {
    logger.warn(`reference_scoring is on, but backend ${probe.kind} scores only on vLLM and SGLang (llama-server and the embedded engine always do): this node is no reference`);
  }
  if (!adapter) throw new TesseraError("internal_error", `no adapter for backend ${probe.kind}`);
  return adapter;
}
