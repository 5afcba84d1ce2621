import { type CheckConstraint, type ChatMessage, type FinishReason, TesseraError } from "@tessera/protocol";
import type { ModelFeature, Sampling, StreamPart, ToolCall } from "@tessera/protocol";
import type { EmbeddingInputList } from "@tessera/protocol";

/**
 * The one narrow interface every inference backend sits behind (the AI SDK's LanguageModel shape).
 * An adapter knows its backend's wire format and nothing else: it gets its base URL and `fetch` injected,
 * never reads the environment and never imports the web framework.
 */
export interface GenerateRequest {
  model: string;
  messages: ChatMessage[];
  sampling: Sampling;
  /**
   * Text another node already produced for this answer. The backend continues the assistant message from it
   * (failover); the prefix itself is not repeated in the output.
   */
  assistantPrefix?: string;
  /**
   * The token ids behind `assistantPrefix`, as the earlier node reported them on its text deltas. A backend that
   * shares the vocabulary feeds them verbatim, which makes a greedy continuation exact (re-tokenising the text can
   * give different ids than the ones the model sampled).
   */
  assistantPrefixTokens?: number[];
  /**
   * A raw prompt (`/v1/completions`): `messages` is one user message whose content is the entire prompt, fed as is
   * with no chat template; a continuation runs on prompt + `assistantPrefix`. Tools are refused with it
   * (`rawPromptRefusal`, raw-prompt.ts). Only adapters that announce the `raw_prompt` feature are sent one.
   */
  rawPrompt?: boolean;
  /**
   * The prompt as token ids (`job.assign` `prompt_tokens`, the job's first node's canonical rendering): run exactly
   * these instead of rendering `messages`. Refused as `bad_request` (param `prompt_tokens`) when they are not this
   * model's ids. Ollama cannot take ids: it runs the canonical text of `messages` in raw mode, or declines the job
   * with `unsupported_parameter` where it cannot render that text (backends/ollama/design.md).
   * See design.md "Canonical prompt".
   */
  promptTokens?: number[];
  /** Yield a `prompt` part with the prompt token ids run, before any text (the job runner asks on a job's first run). */
  reportPromptTokens?: boolean;
  signal?: AbortSignal;
}

export interface GenerateResult {
  text: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  finishReason: FinishReason;
  /** Per-token log-probabilities, where the backend reports them. */
  logprobs?: number[];
  /** The tools the model called, when it called any. */
  toolCalls?: ToolCall[];
}

export interface BackendModel {
  /** The name clients ask for, in the backend's own spelling (`qwen2.5:7b`, a GGUF file's stem, …). */
  id: string;
  sizeBytes?: number;
  /** Resident in memory now (as opposed to only installed on disk). */
  loaded: boolean;
  /** The backend can score given tokens for this model (`score`): the node may be a spot-check reference. */
  scoring?: boolean;
  /** `score` also ranks under `ScoreRequest.constraint`'s grammar (the embedded engine): announced as `constrained_scoring`. */
  constrainedScoring?: boolean;
  /**
   * SHA-256 of the model file, where the backend can name it (embedded and stage nodes hash the file; Ollama reads its
   * GGUF blob's digest): the model's identity in result commitments, reference choice and failover. vLLM, SGLang and
   * llama-server leave it unset.
   */
  sha256?: string;
  /** What this backend can do with the model (model-features.ts); absent: chat answers only. */
  features?: ModelFeature[];
}

/** Score another node's answer (a spot check): the messages as this backend renders them, then the given tokens. */
export interface ScoreRequest {
  model: string;
  messages: ChatMessage[];
  /** The answer was to a raw prompt: score after messages[0].content fed as is (as generation fed it). */
  rawPrompt?: boolean;
  /**
   * The prompt ids the checked node claims it ran. The reference compares them with its own rendering of `messages`
   * and refuses to score a different prompt (`prompt_mismatch` in the thrown error's message: the check fails).
   */
  promptTokens?: number[];
  /**
   * The answer was generated under this grammar (tools or JSON, constrained/output-grammar.ts). Only a backend that
   * can rank tokens under the grammar scores it (the embedded engine); others refuse (`refuseConstraint`).
   */
  constraint?: CheckConstraint;
  outputTokens: number[];
}

/**
 * A backend that scores without a grammar refuses a constrained answer (`unsupported_parameter`): its ranks would
 * judge the node against choices the grammar forbade, and fail honest nodes. The coordinator sends such answers to
 * embedded references only, so this is reached only by a coordinator that did not.
 */
export function refuseConstraint(kind: string, request: ScoreRequest): void {
  if (request.constraint) {
    throw new TesseraError("unsupported_parameter", `${kind} cannot score an answer under its tools or response_format grammar; only the embedded engine can`, { param: "constraint" });
  }
}

/** Per given token its log-probability and rank here; the same for end-of-sequence after the last one. */
export interface ScoreResult {
  promptTokens: number;
  /** `topMass`: probability of the 20 likeliest tokens at that position (judges sampled answers). */
  positions: Array<{ token: number; logprob: number; rank: number; topMass?: number }>;
  eos: { logprob: number; rank: number };
}

/** Embedding vectors for a list of texts or token-id lists (`/v1/embeddings`), with the model the node serves. */
export interface EmbeddingRequest {
  model: string;
  input: EmbeddingInputList;
  signal?: AbortSignal;
}

/** One vector per input, in input order, all of one dimension; `promptTokens`: tokens evaluated, all inputs together. */
export interface EmbeddingResult {
  vectors: ArrayLike<number>[];
  promptTokens: number;
}

export type HealthResult = { ok: true } | { ok: false; message: string };

export interface PullProgress {
  status: string;
  completedBytes?: number;
  totalBytes?: number;
}

export interface BackendAdapter {
  /** Stable backend kind: `embedded`, `openai-compatible`, `ollama`, `vllm`, … */
  readonly kind: string;
  health(signal?: AbortSignal): Promise<HealthResult>;
  listModels(signal?: AbortSignal): Promise<BackendModel[]>;
  doGenerate(request: GenerateRequest): Promise<GenerateResult>;
  /** Yields text-delta parts, then usage, then exactly one finish part. Failures are error parts, never throws. */
  doStream(request: GenerateRequest): AsyncIterable<StreamPart>;
  /** Backends that can install models (Ollama) implement these. */
  pull?(model: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void>;
  remove?(model: string): Promise<void>;
  /** Backends that can teacher-force given tokens (embedded) implement this; throws TesseraError. */
  score?(request: ScoreRequest): Promise<ScoreResult>;
  /** Backends that serve embedding models implement this (and announce `embeddings` for them); throws TesseraError. */
  embed?(request: EmbeddingRequest): Promise<EmbeddingResult>;
  close?(): Promise<void>;
}

/** Collects a stream into a result: the shared `doGenerate` for adapters whose backend only streams. */
export async function collectStream(parts: AsyncIterable<StreamPart>): Promise<GenerateResult> {
  let text = "";
  const logprobs: number[] = [];
  let usage = { prompt_tokens: 0, completion_tokens: 0 };
  let finishReason: FinishReason = "stop";
  let toolCalls: ToolCall[] | undefined;
  for await (const part of parts) {
    switch (part.type) {
      case "text-delta":
        text += part.text;
        if (part.logprobs) logprobs.push(...part.logprobs);
        break;
      case "tool-calls":
        toolCalls = part.calls;
        break;
      case "usage":
        usage = { prompt_tokens: part.prompt_tokens, completion_tokens: part.completion_tokens };
        break;
      case "finish":
        finishReason = part.reason;
        break;
      case "error":
        throw Object.assign(new Error(part.message), { code: part.code });
    }
  }
  const result: GenerateResult = { text, usage, finishReason };
  if (logprobs.length > 0) result.logprobs = logprobs;
  if (toolCalls) result.toolCalls = toolCalls;
  return result;
}
