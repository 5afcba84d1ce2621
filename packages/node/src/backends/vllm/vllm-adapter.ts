import { TesseraError, type StreamPart } from "@tessera/protocol";
import type { BackendAdapter, BackendModel, EmbeddingRequest, EmbeddingResult, GenerateRequest, GenerateResult, HealthResult, ScoreRequest, ScoreResult } from "../adapter.js";
import { errorPart } from "../http/backend-error.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";
import { routeByModel, type VllmInstance } from "./route-by-model.js";
import type { BackendLog } from "../../constrained/canonical-chat.js";
import { withCanonicalTools } from "./vllm-canonical-tools.js";
import { createVllmScorer } from "./vllm-score.js";

/**
 * vLLM (`vllm serve`, default `:8000`), one or several instances `[{host, model}]`, routed by requested model.
 * Each instance is the shared OpenAI-compatible base with `continue_final_message` for assistant prefixes.
 * Reports usage (`stream_options.include_usage`), finish reason (`abort` → cancelled) and per-token logprobs.
 * - `health`: ok only when every instance answers `GET /health` 200; the message names the ones that do not.
 * - `listModels`: the union of every reachable instance's `/v1/models` (an unreachable instance's model is not
 *   listed, so the node never advertises it); throws only when no instance answers.
 * - Tool chats and `response_format` run Tessera's one way (vllm-canonical-tools.ts): the canonical tool prompt as
 *   ids, the one grammar as `structured_outputs.grammar` on `/v1/completions`, the ids reported and carried; a vLLM
 *   that refuses the grammar (400) answers them natively (OpenAI's fields on the chat route; tools then need
 *   `--enable-auto-tool-choice` and a `--tool-call-parser`), without ids.
 * - Answers carry their token ids (`return_token_ids`), so a vLLM node's answers can be spot-checked.
 * - With `scoring` (the operator's `reference_scoring`), each instance scores given tokens for spot checks through
 *   `prompt_logprobs` (vllm-score.ts), and its models are announced with `scoring: true`; without it, never.
 */
export interface VllmOptions {
  instances: VllmInstance[];
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
  /** Models served as embedding models (`vllm serve --task embed`): announced for `/v1/embeddings` only. */
  embeddingModels?: readonly string[];
  /**
   * Serve as a spot-check reference: score other nodes' answers (vllm-score.ts). `eosTokenIds` are the model's
   * end-of-sequence ids; when absent they are read from `GET /tokenizer_info` (`--enable-tokenizer-info-endpoint`).
   */
  scoring?: { eosTokenIds?: readonly number[] };
  /** Where the adapter says what an operator should know (a server that refuses Tessera's grammar); default: a process warning. */
  log?: BackendLog;
}

export function createVllmAdapter(options: VllmOptions): BackendAdapter {
  if (options.instances.length === 0) throw new TesseraError("bad_request", "vllm: at least one instance {host, model} is required");
  const fetchFn = options.fetch ?? globalThis.fetch;
  const headers: Record<string, string> = { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
  const scoring = options.scoring;
  const log = options.log ?? ((_level, message) => process.emitWarning(message));
  const instances = options.instances.map((instance) => ({
    ...instance,
    adapter: withCanonicalTools(createOpenAICompatibleAdapter({
      baseURL: instance.host,
      fetch: options.fetch,
      apiKey: options.apiKey,
      kind: "vllm",
      assistantPrefix: "continue-final-message",
      embeddingModels: options.embeddingModels,
      requestTokenIds: true,
      ...(scoring
        ? { score: createVllmScorer({ baseURL: instance.host, fetch: fetchFn, headers, kind: "vllm", ...(scoring.eosTokenIds?.length ? { eosTokenIds: scoring.eosTokenIds } : {}) }) }
        : {}),
    }), { baseURL: instance.host, fetch: fetchFn, headers, kind: "vllm" }, log),
  }));

  function route(model: string) {
    const target = routeByModel(instances, model);
    if (!target) {
      const served = instances.map((i) => i.model ?? "(any)").join(", ");
      throw new TesseraError("model_not_found", `vllm: no instance serves ${model} (configured: ${served})`);
    }
    return target.adapter;
  }

  const score = scoring ? async (request: ScoreRequest): Promise<ScoreResult> => route(request.model).score!(request) : undefined;

  return {
    kind: "vllm",
    ...(score ? { score } : {}),

    async health(signal?: AbortSignal): Promise<HealthResult> {
      const results = await Promise.all(instances.map((i) => i.adapter.health(signal)));
      const down = results.flatMap((r, k) => (r.ok ? [] : [`${instances[k].model ?? instances[k].host}: ${r.message}`]));
      return down.length === 0 ? { ok: true } : { ok: false, message: down.join("; ") };
    },

    async listModels(signal?: AbortSignal): Promise<BackendModel[]> {
      const settled = await Promise.allSettled(instances.map((i) => i.adapter.listModels(signal)));
      const models = new Map<string, BackendModel>();
      for (const s of settled) if (s.status === "fulfilled") for (const m of s.value) models.set(m.id, m);
      if (settled.every((s) => s.status === "rejected")) throw (settled[0] as PromiseRejectedResult).reason;
      return [...models.values()];
    },

    async embed(request: EmbeddingRequest): Promise<EmbeddingResult> {
      return route(request.model).embed!(request);
    },

    async doGenerate(request: GenerateRequest): Promise<GenerateResult> {
      return route(request.model).doGenerate(request);
    },

    async *doStream(request: GenerateRequest): AsyncGenerator<StreamPart> {
      let adapter: BackendAdapter;
      try {
        adapter = route(request.model);
      } catch (err) {
        yield errorPart(err as TesseraError);
        return;
      }
      yield* adapter.doStream(request);
    },
  };
}
