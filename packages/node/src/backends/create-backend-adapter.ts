import { TesseraError } from "@tessera/protocol";
import type { BackendAdapter } from "./adapter.js";
import { createLlamaServerAdapter } from "./llama-server/llama-server-adapter.js";
import { createMaxAdapter } from "./max/max-adapter.js";
import { createOllamaAdapter } from "./ollama/ollama-adapter.js";
import { createOpenAICompatibleAdapter } from "./openai-compatible/openai-compatible-adapter.js";
import type { SelectedKind } from "./probe-backends.js";
import { createSglangAdapter } from "./sglang/sglang-adapter.js";
import type { VllmInstance } from "./vllm/route-by-model.js";
import { createVllmAdapter } from "./vllm/vllm-adapter.js";
import type { BackendLog } from "../constrained/canonical-chat.js";

/**
 * The one place that turns a chosen backend (from `probeBackends` or the `backend` setting) into its adapter.
 * `embedded` is not built here: it needs the model file and node-llama-cpp, which the daemon owns; this returns
 * undefined for it so the caller falls back explicitly.
 */
export interface CreateBackendOptions {
  kind: SelectedKind;
  baseURL?: string;
  /** vLLM with several instances; when absent, one instance at `baseURL` serving whatever it serves. */
  vllmInstances?: VllmInstance[];
  ollamaKeepAlive?: string | number;
  apiKey?: string;
  /** Models the HTTP backend serves as embedding models (the `embedding_models` setting): announced for embeddings only. */
  embeddingModels?: readonly string[];
  /**
   * vLLM and SGLang: serve as a spot-check reference (the `reference_scoring` setting), with the model's
   * end-of-sequence ids (`score_eos_token_ids`; vLLM reads them from its server when empty, SGLang needs them).
   */
  referenceScoring?: { eosTokenIds: readonly number[] };
  /** vLLM and SGLang: where they say what an operator should know (a server that refuses Tessera's grammar, once). */
  log?: BackendLog;
  fetch?: typeof globalThis.fetch;
}

export function createBackendAdapter(options: CreateBackendOptions): BackendAdapter | undefined {
  const { kind, fetch, apiKey, embeddingModels, referenceScoring } = options;
  if (kind === "embedded") return undefined;
  if (kind === "vllm") {
    const instances = options.vllmInstances?.length ? options.vllmInstances : options.baseURL ? [{ host: options.baseURL }] : [];
    return createVllmAdapter({ instances, fetch, apiKey, embeddingModels, ...(options.log ? { log: options.log } : {}), ...(referenceScoring ? { scoring: { eosTokenIds: referenceScoring.eosTokenIds } } : {}) });
  }
  const baseURL = options.baseURL;
  if (!baseURL) throw new TesseraError("bad_request", `backend ${kind} needs a host (see docs/operator-backends.md)`);
  switch (kind) {
    case "ollama":
      return createOllamaAdapter({ baseURL, fetch, keepAlive: options.ollamaKeepAlive, embeddingModels });
    case "sglang":
      if (referenceScoring && referenceScoring.eosTokenIds.length === 0) {
        throw new TesseraError(
          "bad_request",
          "reference_scoring on SGLang needs the model's end-of-sequence ids (SGLang serves no endpoint naming them): set --score-eos-token-ids, TESSERA_SCORE_EOS_TOKEN_IDS or score_eos_token_ids",
          { param: "score_eos_token_ids" },
        );
      }
      return createSglangAdapter({ baseURL, fetch, apiKey, embeddingModels, ...(options.log ? { log: options.log } : {}), ...(referenceScoring ? { scoring: { eosTokenIds: referenceScoring.eosTokenIds } } : {}) });
    case "max":
      return createMaxAdapter({ baseURL, fetch, apiKey, embeddingModels });
    case "llama-server":
      return createLlamaServerAdapter({ baseURL, fetch, apiKey, embeddingModels });
    case "llama-swap":
      return createLlamaServerAdapter({ baseURL, fetch, apiKey, swap: true, embeddingModels });
    case "openai-compatible":
      return createOpenAICompatibleAdapter({ baseURL, fetch, apiKey, embeddingModels });
  }
}
