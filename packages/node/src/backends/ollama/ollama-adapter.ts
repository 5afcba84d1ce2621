import { TesseraError, type StreamPart } from "@tessera/protocol";
import { type BackendAdapter, type BackendModel, type EmbeddingRequest, type EmbeddingResult, type GenerateRequest, type GenerateResult, type HealthResult, type PullProgress, collectStream } from "../adapter.js";
import { assembleStream, type BackendEvent } from "../http/assemble-stream.js";
import { backendErrorMessage, errorFromFetchFailure, errorFromResponse, errorPart } from "../http/backend-error.js";
import { constrainedContinuationError } from "../http/constrained-continuation.js";
import { joinUrl } from "../http/join-url.js";
import { readJsonLines } from "../http/read-body.js";
import { toOllamaChatBody } from "./convert-messages.js";
import { toOllamaRawGenerateBody } from "./raw-generate-body.js";
import { rawPromptRefusal, rawPromptText } from "../raw-prompt.js";
import { mapOllamaDoneReason } from "./map-finish-reason.js";
import { toolCallPieces } from "./map-tool-calls.js";
import { mapPullProgress } from "./map-pull-progress.js";
import { isOllamaEmbeddingModel, postOllamaEmbed } from "./embeddings.js";
import { createOllamaCanonicalChat } from "./canonical-chat.js";
import type { OllamaShowResponse } from "./show-template.js";
import { type ReadModelFile, readGgufTemplateMetadata } from "./gguf-metadata.js";
import { createOllamaModelFiles } from "./model-file-identity.js";

/**
 * Ollama through its native API (`/api/chat`, `/api/generate`, `/api/show`, `/api/tags`, `/api/ps`, `/api/pull`,
 * `/api/delete`), not its OpenAI layer: only the native API streams pull progress, reports
 * `prompt_eval_count`/`eval_count`, and takes `keep_alive`. Reports usage (prompt_eval_count, eval_count), finish
 * (`done_reason`) and, on Ollama ≥ 0.12.11, per-token logprobs (`logprobs:true`; older versions ignore the field and
 * send none). A raw prompt (`/v1/completions`) goes to `/api/generate` with `raw: true` (raw-generate-body.ts), and
 * so does a chat whose model has a Jinja template: its canonical prompt text (canonical-chat.ts). Other chats, and
 * chats with tools or response_format, go to `/api/chat`.
 */
export interface OllamaOptions {
  /** e.g. `http://127.0.0.1:11434`. */
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  /** How long Ollama keeps a model loaded after a request: `"5m"`, `"1h"`, seconds, or `-1` (forever). */
  keepAlive?: string | number;
  /** Ask for per-token logprobs. Default true. */
  requestLogprobs?: boolean;
  /** Models to serve as embedding models besides those of an encoder-only family (embeddings.ts), with or without `:latest`. */
  embeddingModels?: readonly string[];
  /**
   * Reads the GGUF blob Ollama serves a model from, for its own chat template (gguf-metadata.ts; canonical-chat.ts).
   * Default: node-llama-cpp's GGUF reader on the path `/api/show`'s Modelfile names.
   */
  readModelFile?: ReadModelFile;
}

export interface OllamaAdapter extends BackendAdapter {
  pull(model: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void>;
  remove(model: string): Promise<void>;
  /** Load a model now and keep it for `keepAlive` (default: the adapter's). */
  load(model: string, keepAlive?: string | number): Promise<void>;
  /** Unload a model from memory now (`keep_alive: 0`). */
  unload(model: string): Promise<void>;
}

const KIND = "ollama";

export function createOllamaAdapter(options: OllamaOptions): OllamaAdapter {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const url = (path: string) => joinUrl(options.baseURL, path);
  const json = { "content-type": "application/json" };

  async function call(path: string, init: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await fetchFn(url(path), init);
    } catch (err) {
      throw errorFromFetchFailure(KIND, url(path), err);
    }
    if (!res.ok) throw await errorFromResponse(KIND, res);
    return res;
  }

  async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await (await call(path, { signal })).json()) as T;
  }

  const canonical = createOllamaCanonicalChat({
    readModelFile: options.readModelFile ?? readGgufTemplateMetadata,
    show: async (model, verbose, signal) => (await (await call("/api/show", { method: "POST", headers: json, body: JSON.stringify({ model, verbose }), signal })).json()) as OllamaShowResponse,
  });

  /** Each model's GGUF SHA-256 (model-file-identity.ts), reported by listModels as `sha256`. */
  const modelFiles = createOllamaModelFiles({
    show: async (model, signal) => (await call("/api/show", { method: "POST", headers: json, body: JSON.stringify({ model }), signal })).json() as Promise<unknown>,
    onReplaced: (model) => canonical.forget(model),
  });

  /**
   * The path and body of a generation: `/api/generate` (raw) for a raw prompt or a chat's canonical text,
   * `/api/chat` otherwise. Throws TesseraError.
   */
  async function generation(request: GenerateRequest, stream: boolean): Promise<{ path: string; body: string }> {
    const raw = rawPromptRefusal(KIND, request, { allowResponseFormat: false });
    if (raw) throw raw;
    const prompt = request.rawPrompt ? rawPromptText(request) : await canonical.rawText(request);
    if (prompt === undefined) return { path: "/api/chat", body: JSON.stringify(chatBody(request, stream)) };
    const body = toOllamaRawGenerateBody({
      model: request.model,
      prompt,
      sampling: request.sampling,
      stream,
      keepAlive: options.keepAlive,
      logprobs: options.requestLogprobs ?? true,
    });
    return { path: "/api/generate", body: JSON.stringify(body) };
  }

  function chatBody(request: GenerateRequest, stream: boolean) {
    const refusal = constrainedContinuationError(KIND, request);
    if (refusal) throw refusal;
    return toOllamaChatBody({
      model: request.model,
      messages: request.messages,
      sampling: request.sampling,
      assistantPrefix: request.assistantPrefix,
      stream,
      keepAlive: options.keepAlive,
      logprobs: options.requestLogprobs ?? true,
    });
  }

  async function* events(body: ReadableStream<Uint8Array>, parallel: boolean): AsyncGenerator<BackendEvent> {
    // Ollama sends whole calls (no ids, arguments as objects), possibly over several lines; numbered here in order.
    let callIndex = 0;
    for await (const raw of readJsonLines(body)) {
      const line = raw as {
        error?: unknown;
        message?: { content?: unknown; tool_calls?: unknown };
        /** `/api/generate`'s text (raw prompts). */
        response?: unknown;
        logprobs?: { logprob?: unknown }[];
        done?: boolean;
        done_reason?: unknown;
        prompt_eval_count?: unknown;
        eval_count?: unknown;
      };
      if (line.error !== undefined) {
        yield { kind: "error", error: new TesseraError("internal_error", `${KIND}: ${backendErrorMessage(line) ?? "error mid-stream"}`) };
        return;
      }
      const text = typeof line.message?.content === "string" ? line.message.content : typeof line.response === "string" ? line.response : "";
      const event: BackendEvent = { kind: "chunk", text };
      const pieces = toolCallPieces(line.message?.tool_calls, callIndex, parallel);
      if (pieces.length > 0) {
        event.toolCalls = pieces;
        callIndex += pieces.length;
      }
      const lps = Array.isArray(line.logprobs) ? line.logprobs.map((l) => l.logprob) : [];
      if (lps.length > 0 && lps.every((l): l is number => typeof l === "number")) event.logprobs = lps;
      if (line.done === true) {
        event.finish = mapOllamaDoneReason(line.done_reason);
        event.usage = {
          // Ollama omits prompt_eval_count when the whole prompt came from its cache.
          prompt_tokens: typeof line.prompt_eval_count === "number" ? line.prompt_eval_count : 0,
          completion_tokens: typeof line.eval_count === "number" ? line.eval_count : 0,
        };
      }
      yield event;
    }
  }

  const adapter: OllamaAdapter = {
    kind: KIND,

    async health(signal?: AbortSignal): Promise<HealthResult> {
      try {
        await getJson("/api/tags", signal);
        return { ok: true };
      } catch (err) {
        return { ok: false, message: (err as Error).message };
      }
    },

    async listModels(signal?: AbortSignal): Promise<BackendModel[]> {
      type Tag = { name: string; size?: unknown; digest?: unknown; details?: { families?: unknown } };
      const [tags, ps] = await Promise.all([
        getJson<{ models?: unknown }>("/api/tags", signal),
        getJson<{ models?: { name?: string }[] }>("/api/ps", signal),
      ]);
      const loaded = new Set((Array.isArray(ps?.models) ? ps.models : []).map((m: { name?: unknown } | null) => m?.name));
      const listed = (Array.isArray(tags?.models) ? (tags.models as unknown[]) : []).filter(
        (m): m is Tag => typeof m === "object" && m !== null && typeof (m as { name?: unknown }).name === "string",
      );
      return Promise.all(
        listed.map(async (m) => {
          const model: BackendModel = { id: m.name, loaded: loaded.has(m.name) };
          if (typeof m.size === "number") model.sizeBytes = m.size;
          const sha256 = await modelFiles.sha256Of(m.name, m.digest, signal);
          if (sha256 !== undefined) model.sha256 = sha256;
          if (isOllamaEmbeddingModel(m, options.embeddingModels ?? [])) model.features = ["embeddings"];
          return model;
        }),
      );
    },

    embed(request: EmbeddingRequest): Promise<EmbeddingResult> {
      return postOllamaEmbed({ url: url("/api/embed"), fetch: fetchFn, keepAlive: options.keepAlive }, request);
    },

    async doGenerate(request: GenerateRequest): Promise<GenerateResult> {
      if (request.sampling.tools?.length) return collectStream(adapter.doStream(request)); // one assembly path for calls
      const { path, body: sent } = await generation(request, false);
      const res = await call(path, { method: "POST", headers: json, body: sent, signal: request.signal });
      const body = (await res.json()) as {
        message?: { content?: string };
        response?: string;
        done_reason?: unknown;
        prompt_eval_count?: number;
        eval_count?: number;
        logprobs?: { logprob?: unknown }[];
        error?: unknown;
      };
      if (body.error !== undefined) throw new TesseraError("internal_error", `${KIND}: ${backendErrorMessage(body)}`);
      const result: GenerateResult = {
        text: body.message?.content ?? body.response ?? "",
        usage: { prompt_tokens: body.prompt_eval_count ?? 0, completion_tokens: body.eval_count ?? 0 },
        finishReason: mapOllamaDoneReason(body.done_reason),
      };
      const lps = (body.logprobs ?? []).map((l) => l.logprob);
      if (lps.length > 0 && lps.every((l): l is number => typeof l === "number")) result.logprobs = lps;
      return result;
    },

    async *doStream(request: GenerateRequest): AsyncGenerator<StreamPart> {
      let res: Response;
      try {
        const { path, body } = await generation(request, true);
        res = await call(path, { method: "POST", headers: json, body, signal: request.signal });
      } catch (err) {
        if (request.signal?.aborted) {
          yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
          yield { type: "finish", reason: "cancelled" };
          return;
        }
        yield errorPart(err as TesseraError);
        return;
      }
      if (!res.body) {
        yield errorPart(new TesseraError("internal_error", `${KIND}: empty response body`));
        return;
      }
      yield* assembleStream(KIND, events(res.body, request.sampling.parallel_tool_calls !== false), request.signal);
    },

    async pull(model: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void> {
      canonical.forget(model);
      modelFiles.forget(model);
      const res = await call("/api/pull", { method: "POST", headers: json, body: JSON.stringify({ model, stream: true }), signal });
      if (!res.body) throw new TesseraError("internal_error", `${KIND}: empty pull response`);
      for await (const raw of readJsonLines(res.body)) {
        const line = raw as { error?: unknown; status?: unknown };
        if (line.error !== undefined) {
          const message = backendErrorMessage(line) ?? "pull failed";
          // "pull model manifest: file does not exist" is Ollama's answer for a name its registry lacks.
          const code = /file does not exist|not found/i.test(message) ? "model_not_found" : "internal_error";
          throw new TesseraError(code, `${KIND}: pulling ${model}: ${message}`);
        }
        onProgress(mapPullProgress(line));
        if (line.status === "success") return;
      }
      throw new TesseraError("internal_error", `${KIND}: pull of ${model} ended without success`);
    },

    async remove(model: string): Promise<void> {
      canonical.forget(model);
      modelFiles.forget(model);
      const res = await call("/api/delete", { method: "DELETE", headers: json, body: JSON.stringify({ model }) });
      await res.body?.cancel();
    },

    async load(model: string, keepAlive?: string | number): Promise<void> {
      const res = await call("/api/chat", {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model, messages: [], keep_alive: keepAlive ?? options.keepAlive ?? "5m" }),
      });
      await res.body?.cancel();
    },

    async unload(model: string): Promise<void> {
      const res = await call("/api/chat", { method: "POST", headers: json, body: JSON.stringify({ model, messages: [], keep_alive: 0 }) });
      await res.body?.cancel();
    },
  };
  return adapter;
}

