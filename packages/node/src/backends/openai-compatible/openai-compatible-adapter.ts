import { TesseraError, type ErrorCode, type StreamPart } from "@tessera/protocol";
import { type BackendAdapter, type BackendModel, type EmbeddingRequest, type EmbeddingResult, type GenerateRequest, type GenerateResult, type HealthResult, type ScoreRequest, type ScoreResult, collectStream } from "../adapter.js";
import { assembleStream, type BackendEvent } from "../http/assemble-stream.js";
import { errorFromFetchFailure, errorFromResponse, errorPart, isErrorEvent, backendErrorMessage } from "../http/backend-error.js";
import { constrainedContinuationError, promptTokensWithToolsRefusal } from "../http/constrained-continuation.js";
import { joinUrl } from "../http/join-url.js";
import { AssistantPrefixUnsupportedError, convertMessages, type AssistantPrefixMode } from "./convert-messages.js";
import { mapChunk } from "./map-chunk.js";
import { readSseEvents } from "./read-sse-events.js";
import { mapCompletionChunk } from "./map-completion-chunk.js";
import { completionBody } from "./completion-body.js";
import { rawPromptRefusal } from "../raw-prompt.js";
import { type GenerationOptionsDialect, mapGenerationOptions } from "./map-generation-options.js";
import { postOpenAIEmbeddings } from "./embeddings.js";

/**
 * The shared base of every OpenAI-compatible backend (vLLM, SGLang, MAX, llama-server, llama-swap, or any server
 * speaking `/v1/chat/completions`). Flavours differ only in the options below; they never subclass.
 */
export interface OpenAICompatibleOptions {
  /** Server root, e.g. `http://127.0.0.1:8000` (the `/v1/...` paths are appended). */
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  /** Reported as `adapter.kind`. */
  kind?: string;
  /** Sent as `Authorization: Bearer …` when the server was started with an API key. */
  apiKey?: string;
  /** Liveness path; every flavour we know uses `/health`. */
  healthPath?: string;
  assistantPrefix?: AssistantPrefixMode;
  /** Ask for per-token log-probabilities (`logprobs:true`); verification needs them. Default true. */
  requestLogprobs?: boolean;
  /** Ask for usage in the stream (`stream_options.include_usage`). Default true. */
  requestStreamUsage?: boolean;
  /** How this server takes response_format (default: OpenAI's spelling, json_object included). */
  generationOptions?: GenerationOptionsDialect;
  /** Flavour-specific error refinement (e.g. llama-swap's 400 "could not find real modelID" → model_not_found). */
  refineError?: (status: number, message: string) => ErrorCode | undefined;
  /** Which served models are resident now (llama-swap's `/running`); by default all served models are. */
  loadedModels?: (fetch: typeof globalThis.fetch, signal?: AbortSignal) => Promise<Set<string>>;
  /** Models the server serves as embedding models (the operator's `embedding_models`): announced for embeddings only. */
  embeddingModels?: readonly string[];
  /**
   * Ask for the answer's token ids beside its text (vLLM's `return_token_ids: true`; a vLLM too old to know the field
   * ignores it, and its answers then carry no ids). They make the answers checkable: a spot check needs every token's id.
   */
  requestTokenIds?: boolean;
  /** Server-specific fields of a `/v1/completions` body (a raw prompt, or a chat as canonical prompt ids), per request. */
  completionFields?: (request: GenerateRequest) => Record<string, unknown>;
  /** Scores given tokens (spot-check references); its generative models are then announced with `scoring: true`. */
  score?: (request: ScoreRequest) => Promise<ScoreResult>;
}

export function createOpenAICompatibleAdapter(options: OpenAICompatibleOptions): BackendAdapter {
  return new OpenAICompatibleAdapter(options);
}

class OpenAICompatibleAdapter implements BackendAdapter {
  readonly kind: string;
  readonly score?: (request: ScoreRequest) => Promise<ScoreResult>;
  private readonly fetch: typeof globalThis.fetch;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: OpenAICompatibleOptions) {
    this.kind = options.kind ?? "openai-compatible";
    if (options.score) this.score = options.score;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.headers = { "content-type": "application/json" };
    if (options.apiKey) this.headers.authorization = `Bearer ${options.apiKey}`;
  }

  private url(path: string): string {
    return joinUrl(this.options.baseURL, path);
  }

  async health(signal?: AbortSignal): Promise<HealthResult> {
    const url = this.url(this.options.healthPath ?? "/health");
    try {
      const res = await this.fetch(url, { headers: this.headers, signal });
      if (res.ok) {
        await res.body?.cancel();
        return { ok: true };
      }
      const text = await res.text().catch(() => "");
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // plain text
      }
      return { ok: false, message: `${this.kind} at ${url}: HTTP ${res.status}${detail(backendErrorMessage(parsed))}` };
    } catch (err) {
      return { ok: false, message: errorFromFetchFailure(this.kind, url, err).message };
    }
  }

  async listModels(signal?: AbortSignal): Promise<BackendModel[]> {
    const url = this.url("/v1/models");
    let res: Response;
    try {
      res = await this.fetch(url, { headers: this.headers, signal });
    } catch (err) {
      throw errorFromFetchFailure(this.kind, url, err);
    }
    if (!res.ok) throw await errorFromResponse(this.kind, res, this.options.refineError);
    const body = (await res.json()) as { data?: { id?: unknown }[] };
    const ids = (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
    const loaded = this.options.loadedModels ? await this.options.loadedModels(this.fetch, signal) : undefined;
    const embedding = new Set(this.options.embeddingModels ?? []);
    const scoring = this.options.score !== undefined;
    return ids.map((id) => ({
      id,
      loaded: loaded ? loaded.has(id) : true,
      ...(embedding.has(id) ? { features: ["embeddings" as const] } : scoring ? { scoring: true } : {}),
    }));
  }

  /** `POST /v1/embeddings` (embeddings.ts). */
  embed(request: EmbeddingRequest): Promise<EmbeddingResult> {
    return postOpenAIEmbeddings({ kind: this.kind, url: this.url("/v1/embeddings"), headers: this.headers, fetch: this.fetch, refineError: this.options.refineError }, request);
  }

  private buildBody(request: GenerateRequest, stream: boolean): Record<string, unknown> {
    const { messages, extra } = convertMessages(
      request.messages,
      request.assistantPrefix,
      this.options.assistantPrefix ?? "trailing-assistant",
    );
    const body: Record<string, unknown> = {
      model: request.model,
      messages,
      max_tokens: request.sampling.max_tokens,
      temperature: request.sampling.temperature,
      top_p: request.sampling.top_p,
      stream,
      ...extra,
      ...mapGenerationOptions(request.sampling, this.options.generationOptions ?? { jsonObject: "native" }),
    };
    if (request.sampling.seed !== undefined) body.seed = request.sampling.seed;
    // For the checks, unless the answer is a tool call: those are never checked, and llama-server refuses logprobs on
    // a streamed tool job (HTTP 400 "logprobs is not supported with tools + stream"). A client's own ask still goes.
    if ((this.options.requestLogprobs ?? true) && !request.sampling.tools?.length) body.logprobs = true;
    if (stream && (this.options.requestStreamUsage ?? true)) body.stream_options = { include_usage: true };
    return body;
  }

  /** A raw prompt goes to `/v1/completions` (completion-body.ts), anything else to `/v1/chat/completions`. */
  private async post(request: GenerateRequest, stream: boolean): Promise<Response> {
    const refusal = promptTokensWithToolsRefusal(this.kind, request) ?? rawPromptRefusal(this.kind, request, { allowResponseFormat: false }) ?? constrainedContinuationError(this.kind, request);
    if (refusal) throw refusal;
    // A raw prompt, or a chat as canonical prompt ids (llama-server/canonical-prompt.ts), is a text completion.
    const completion = request.rawPrompt === true || request.promptTokens !== undefined;
    let body: Record<string, unknown>;
    try {
      body = completion
        ? completionBody(request, stream, { logprobs: this.options.requestLogprobs ?? true, streamUsage: this.options.requestStreamUsage ?? true })
        : this.buildBody(request, stream);
    } catch (err) {
      if (err instanceof AssistantPrefixUnsupportedError) throw new TesseraError("bad_request", `${this.kind}: ${err.message}`);
      throw err;
    }
    if (this.options.requestTokenIds) body.return_token_ids = true;
    if (completion && this.options.completionFields) Object.assign(body, this.options.completionFields(request));
    const url = this.url(completion ? "/v1/completions" : "/v1/chat/completions");
    let res: Response;
    try {
      res = await this.fetch(url, { method: "POST", headers: this.headers, body: JSON.stringify(body), signal: request.signal });
    } catch (err) {
      throw errorFromFetchFailure(this.kind, url, err);
    }
    if (!res.ok) throw await errorFromResponse(this.kind, res, this.options.refineError);
    return res;
  }

  async doGenerate(request: GenerateRequest): Promise<GenerateResult> {
    const res = await this.post(request, false);
    const raw = (await res.json()) as unknown;
    if (isErrorEvent(raw)) throw new TesseraError("internal_error", `${this.kind}: ${backendErrorMessage(raw) ?? "error"}`);
    const c = (request.rawPrompt || request.promptTokens !== undefined ? mapCompletionChunk : mapChunk)(raw);
    if (!c.usage) throw new TesseraError("internal_error", `${this.kind}: response carried no usage`);
    // As in a stream (events below): vLLM counts the token it stopped on, which is not part of the answer.
    if (this.options.requestTokenIds && c.tokenIds?.length && c.finish === "stop" && typeof c.stopReason !== "string") {
      c.usage = { ...c.usage, completion_tokens: Math.max(0, c.usage.completion_tokens - 1) };
    }
    if (c.toolCalls) {
      // The same assembly as a stream's, so both paths name and number calls alike.
      const whole: BackendEvent = { kind: "chunk", text: c.text, finish: c.finish ?? "stop", usage: c.usage, toolCalls: c.toolCalls };
      return collectStream(assembleStream(this.kind, (async function* () { yield whole; })(), request.signal));
    }
    const result: GenerateResult = { text: c.text, usage: c.usage, finishReason: c.finish ?? "stop" };
    if (c.logprobs) result.logprobs = c.logprobs;
    return result;
  }

  async *doStream(request: GenerateRequest): AsyncGenerator<StreamPart> {
    let res: Response;
    try {
      res = await this.post(request, true);
    } catch (err) {
      if (request.signal?.aborted) {
        yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
        yield { type: "finish", reason: "cancelled" };
        return;
      }
      yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", String(err)));
      return;
    }
    if (!res.body) {
      yield errorPart(new TesseraError("internal_error", `${this.kind}: empty response body`));
      return;
    }
    const map = request.rawPrompt || request.promptTokens !== undefined ? mapCompletionChunk : mapChunk;
    yield* assembleStream(this.kind, readSseEvents(this.kind, res.body, map, this.options.requestTokenIds === true), request.signal);
  }
}

function detail(message: string | undefined): string {
  return message ? ` (${message})` : "";
}
