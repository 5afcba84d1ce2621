import { access, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, extname } from "node:path";
import { type ErrorCode, type ModelFeature, type StreamPart, TesseraError, modelIdFromFileName } from "@tessera/protocol";
import { type Llama, type LlamaContext, LlamaLogLevel, type LlamaModel, type Token, getLlama } from "node-llama-cpp";
import { type BackendAdapter, type BackendModel, type GenerateRequest, type HealthResult, type ScoreRequest, type ScoreResult, collectStream } from "../adapter.js";
import type { VerificationEngine } from "../../verification/types.js";
import { sha256File } from "../../file-sha256.js";
import { type PromptFormatter, createPromptFormatter, rawPromptTokens } from "./prompt-format.js";
import { rawPromptOf, rawPromptRefusal } from "../raw-prompt.js";
import { PromptMismatchError, promptTokensRefusal, sameTokens } from "../../prompt/index.js";
import { generationFeatures } from "../backend-features.js";
import { type OutputPlan, type OutputPlanResult, cachedPlanner, grammarState, grammarWalk } from "./output-constraint.js";
import { replayPrefix } from "./prefix-replay.js";
import { SequencePool } from "./sequence-pool.js";
import { type EmbeddingRunner, createEmbeddingRunner, isEmbeddingModelFile } from "./embedding-model.js";
import { toolPromptMessages } from "../../constrained/tool-prompt.js";
import { ConstrainedAnswer } from "../../constrained/constrained-answer.js";
import { TokenTextStream } from "./token-text-stream.js";
import { type ScoredToken, scoredTokens, tokenLogprobs } from "./scored-generation.js";
import { greedyWithLogprobs } from "./greedy-logprobs.js";
import { rankUnderGrammar } from "../../verification/grammar-ranks.js";
import { grammarEndIndex } from "../../verification/grammar-end.js";
import { type GetLlama, loadLlama } from "../../gpu-runtime/load-llama.js";

/** node-llama-cpp in-process on one GGUF file. See design.md. */
export interface EmbeddedBackendOptions {
  modelPath: string;
  /** The name clients ask for. Default: the file name without `.gguf`. */
  modelId?: string;
  /** llama.cpp threads. Default: 1 on machines with ≤ 2 cores, else half the cores (see design.md). */
  threads?: number;
  /** Tokens per sequence. Default: the model's trained context length, capped at 4096. */
  contextSize?: number;
  /** Concurrent requests (context sequences). Default 4. */
  maxSequences?: number;
  /** `<data dir>/gpu-runtime`: the GPU build `tessera gpu setup` installed there is used when it loads (gpu-runtime/). */
  gpuRuntimeDir?: string;
  /** `[limits] max_vram_fraction`: the share of the GPU's memory the engine may fill with layers and context. */
  maxVramFraction?: number;
  /** Where the engine says which llama.cpp build it loaded, and why it fell back to the CPU one. */
  log?: (level: "info" | "warn", message: string) => void;
}

/** What this engine does with a generative model (backend-features.ts, the one table of what each kind offers). */
const EMBEDDED_FEATURES: ModelFeature[] = generationFeatures("embedded");

export function defaultEmbeddedThreads(cores = availableParallelism()): number {
  return cores <= 2 ? 1 : Math.floor(cores / 2);
}

interface Loaded {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  pool: SequencePool;
  formatter: PromptFormatter;
  /** Grammars for response_format and tools, compiled once per distinct request shape. */
  plan: ReturnType<typeof cachedPlanner>;
}

function failure(code: ErrorCode, message: string): StreamPart {
  return { type: "error", code, message };
}

/** node-llama-cpp 3.22 exposes no vocabulary size; the GGUF's token list is authoritative. */
function vocabularySize(model: LlamaModel): number {
  const tokens = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? tokens.length : 0;
}

export interface EmbeddedBackend extends BackendAdapter {
  /** Loads the model now (normally lazy, on the first request); rejects with a TesseraError naming the path. */
  load(): Promise<void>;
  /** Frees the context, the model and llama.cpp; later requests get a no_capacity error part. */
  close(): Promise<void>;
  /**
   * Frees the context, the model and llama.cpp like `close()`, but the backend stays usable: the next request (or
   * `load()`) loads the file again. The idle policy calls it when the machine's owner is back (node/src/idle/).
   */
  unload(): Promise<void>;
  /** Which llama.cpp build serves (CPU, or the data dir's CUDA/Vulkan/Metal one), once loaded. */
  engineBuild(): string | undefined;
}

export function createEmbeddedBackend(options: EmbeddedBackendOptions): EmbeddedBackend {
  const modelPath = options.modelPath;
  const modelId = options.modelId ?? modelIdFromFileName(basename(modelPath, extname(modelPath)));
  const threads = options.threads ?? defaultEmbeddedThreads();
  const maxSequences = options.maxSequences ?? 4;
  if (!Number.isInteger(threads) || threads < 1) throw new TesseraError("bad_request", `threads must be a positive integer, got ${threads}`);
  if (!Number.isInteger(maxSequences) || maxSequences < 1) {
    throw new TesseraError("bad_request", `maxSequences must be a positive integer, got ${maxSequences}`);
  }
  let loading: Promise<Loaded> | undefined;
  let closed = false;
  /** The spot-check scorer: the same file loaded once more (mmap shares its pages) with a context of its own. */
  let scorer: Promise<VerificationEngine> | undefined;
  /** The file's SHA-256, hashed once per (size, mtime): a replaced file is hashed again. */
  let digest: { key: string; sha256: Promise<string> } | undefined;
  /** Whether the file is an embedding model (embedding-model.ts), read once per (size, mtime) like the digest. */
  let kind: { key: string; embedding: Promise<boolean> } | undefined;
  function isEmbeddingModel(): Promise<boolean> {
    return stat(modelPath).then(
      (file) => {
        const key = `${file.size}:${file.mtimeMs}`;
        if (kind?.key !== key) kind = { key, embedding: isEmbeddingModelFile(modelPath).catch(() => false) };
        return kind.embedding;
      },
      () => false,
    );
  }
  let embedder: EmbeddingRunner | undefined;
  let build: string | undefined;
  function fileSha256(size: number, mtimeMs: number): Promise<string> {
    const key = `${size}:${mtimeMs}`;
    if (digest?.key !== key) digest = { key, sha256: sha256File(modelPath) };
    return digest.sha256;
  }

  async function load(): Promise<Loaded> {
    try {
      await access(modelPath);
    } catch {
      throw new TesseraError("model_not_found", `model file not found: ${modelPath}`);
    }
    const loadedLlama = await loadLlama({
      runtimeDir: options.gpuRuntimeDir,
      ...(options.maxVramFraction !== undefined ? { maxVramFraction: options.maxVramFraction } : {}),
      getLlama: getLlama as GetLlama,
      logLevel: LlamaLogLevel.error,
      log: options.log,
    });
    const llama = loadedLlama.llama;
    build = loadedLlama.detail;
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath });
    } catch (error) {
      await llama.dispose();
      throw new TesseraError("internal_error", `could not load model ${modelPath}: ${(error as Error).message}`, { cause: error });
    }
    const trained = model.trainContextSize;
    const contextSize = options.contextSize ?? Math.min(trained, 4096);
    const context = await model.createContext({ contextSize, sequences: maxSequences, threads });
    return { llama, model, context, pool: new SequencePool(context), formatter: createPromptFormatter(model), plan: cachedPlanner(llama) };
  }

  function ensureLoaded(): Promise<Loaded> {
    if (closed) return Promise.reject(new TesseraError("no_capacity", "embedded backend is closed"));
    if (!loading) {
      loading = load();
      loading.catch(() => {
        loading = undefined; // not cached: the operator may fix the file and the next request loads it
      });
    }
    return loading;
  }

  /** Token ids to feed after the prompt for a continuation. See design.md "Continuation". */
  function continuationTokens(model: LlamaModel, prompt: Token[], request: GenerateRequest): Token[] {
    const text = request.assistantPrefix ?? "";
    const ids = request.assistantPrefixTokens as Token[] | undefined;
    if (ids && ids.length > 0) {
      const vocabSize = vocabularySize(model);
      const valid = ids.every((t) => Number.isInteger(t) && t >= 0 && t < vocabSize);
      // Same vocabulary ⇔ the ids spell the prefix text (decoded after the prompt, as the first node decoded them).
      if (valid && (request.assistantPrefix === undefined || model.detokenize(ids, false, prompt.slice(-16)) === text)) {
        return ids;
      }
    }
    if (text.length === 0) return [];
    return model.tokenize(text, false, "trimLeadingSpace");
  }

  async function* stream(request: GenerateRequest): AsyncGenerator<StreamPart> {
    if (request.model !== modelId) {
      yield failure("model_not_found", `model ${request.model} is not served here (this backend serves ${modelId})`);
      return;
    }
    if (await isEmbeddingModel()) {
      yield failure("unsupported_parameter", `model ${modelId} is an embedding model: it does not generate text; use /v1/embeddings`);
      return;
    }
    let loaded: Loaded;
    try {
      loaded = await ensureLoaded();
    } catch (error) {
      const e = error instanceof TesseraError ? error : new TesseraError("internal_error", String(error));
      yield failure(e.code, e.message);
      return;
    }
    const { model, context, pool, formatter } = loaded;
    const signal = request.signal;
    const { max_tokens: maxTokens, temperature, top_p: topP, seed } = request.sampling;
    const refusal = rawPromptRefusal("embedded", request, { allowResponseFormat: true });
    if (refusal) {
      yield failure(refusal.code, refusal.message);
      return;
    }

    let plan: OutputPlan;
    try {
      const planned = await loaded.plan(request.sampling);
      if (!planned.ok) {
        yield failure("bad_request", planned.message);
        return;
      }
      plan = planned.plan;
    } catch (error) {
      yield failure("bad_request", `could not build a grammar for response_format or tools: ${(error as Error).message}`);
      return;
    }
    const messages = toolPromptMessages(request.messages, plan.kind === "tools" ? plan.tools : [], plan.kind === "tools" && plan.required);

    let prompt: Token[];
    let prefix: Token[];
    if (request.promptTokens !== undefined) {
      const bad = promptTokensRefusal(request.promptTokens, { vocabSize: vocabularySize(model), maxLength: context.contextSize - 1 });
      if (bad) {
        yield failure(bad.code, bad.message);
        return;
      }
    }
    try {
      prompt = request.promptTokens !== undefined
        ? (request.promptTokens as Token[])
        : request.rawPrompt ? rawPromptTokens(model, rawPromptOf(request)) : formatter.promptTokens(messages);
      prefix = continuationTokens(model, prompt, request);
    } catch (error) {
      yield failure("bad_request", `could not format the prompt: ${(error as Error).message}`);
      return;
    }
    const grammar = plan.kind === "free" ? undefined : grammarState(model, plan.grammar, prefix);
    if (plan.kind !== "free" && !grammar) {
      yield failure("bad_request", "the answer so far does not fit its response_format or tool grammar, so it cannot be continued here");
      return;
    }
    const wantLogprobs = request.sampling.logprobs === true;
    if (wantLogprobs && plan.kind !== "free") {
      // Log-probabilities come from a path that samples outside node-llama-cpp (scored-generation.ts), where its grammars do not run.
      yield { type: "error", code: "unsupported_parameter", message: "the embedded engine cannot return logprobs for an answer constrained by response_format or tools" };
      return;
    }
    const input = [...prompt, ...prefix];
    if (input.length >= context.contextSize) {
      yield failure("bad_request", `prompt is ${input.length} tokens; this model's context holds ${context.contextSize}`);
      return;
    }

    if (signal?.aborted) {
      yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
      yield { type: "finish", reason: "cancelled" };
      return;
    }
    let sequence;
    try {
      sequence = await pool.acquire(signal);
    } catch {
      yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
      yield { type: "finish", reason: "cancelled" };
      return;
    }

    if (request.reportPromptTokens) yield { type: "prompt", tokens: [...prompt] };
    const text = new TokenTextStream(model, prompt, prefix);
    let finish: "stop" | "length" | "cancelled" = "length";
    let generatedCount = 0;
    let failed: StreamPart | undefined;
    const answer = new ConstrainedAnswer(plan.kind, prefix.length > 0);
    // With logprobs: scored tokens wait here until the delta they belong to goes out, and carry them.
    const scores: ScoredToken[] = [];
    let before: Token[] = input.slice(-16);
    // A greedy answer carries its tokens' log-probabilities even unasked: the trust checks compare them.
    const forChecks = !wantLogprobs && temperature === 0 && plan.kind === "free";
    const carryLogprobs = (parts: StreamPart[]): StreamPart[] => {
      if (!wantLogprobs && !forChecks) return parts;
      for (const part of parts) {
        if (part.type !== "text-delta" || !part.tokens) continue;
        const mine = scores.splice(0, part.tokens.length);
        part.logprobs = mine.map((s) => s.logprob);
        if (!wantLogprobs) continue;
        part.token_logprobs = tokenLogprobs(model, mine, before);
        before = [...before, ...(part.tokens as Token[])].slice(-16);
      }
      return parts;
    };
    try {
      const feed = await replayPrefix(sequence, prompt, prefix);
      const tokens: AsyncIterable<Token | ScoredToken> = wantLogprobs
        ? scoredTokens(sequence, feed, { temperature, topP, ...(seed !== undefined ? { seed } : {}), topLogprobs: request.sampling.top_logprobs ?? 0 })
        : forChecks
          ? greedyWithLogprobs(sequence, feed, maxTokens)
          : sequence.evaluate(feed, {
            temperature,
            topP: temperature > 0 ? topP : undefined,
            seed: temperature > 0 ? seed : undefined,
            yieldEogToken: true, // so that the loop, not node-llama-cpp, decides: EOG → finish "stop", never emitted
            ...(grammar ? { grammarEvaluationState: grammar } : {}),
          });
      for await (const item of tokens) {
        const token = typeof item === "number" ? item : item.token;
        if (signal?.aborted) {
          finish = "cancelled";
          break;
        }
        if (model.isEogToken(token)) {
          finish = "stop";
          break;
        }
        if (typeof item !== "number") scores.push(item);
        generatedCount++;
        const delta = text.push(token);
        if (delta) {
          const out = answer.push(delta);
          yield* carryLogprobs(out.parts);
          if (out.ended) {
            finish = "stop";
            break;
          }
        }
        if (generatedCount >= maxTokens || sequence.nextTokenIndex >= context.contextSize) {
          finish = "length";
          break;
        }
        if (signal?.aborted) {
          finish = "cancelled";
          break;
        }
      }
    } catch (error) {
      if (signal?.aborted) finish = "cancelled";
      else failed = failure("internal_error", `generation failed: ${(error as Error).message}`);
    } finally {
      await pool.release(sequence).catch(() => undefined);
    }
    const rest = text.flush();
    if (rest) yield* carryLogprobs(answer.push(rest).parts);
    yield* carryLogprobs(answer.finish(finish === "stop"));
    if (failed) {
      yield failed;
      return;
    }
    yield { type: "usage", prompt_tokens: input.length, completion_tokens: generatedCount };
    yield { type: "finish", reason: finish };
  }

  return {
    kind: "embedded",
    async health(): Promise<HealthResult> {
      if (closed) return { ok: false, message: "embedded backend is closed" };
      try {
        await access(modelPath);
      } catch {
        return { ok: false, message: `model file not found: ${modelPath}` };
      }
      return { ok: true };
    },
    async listModels(): Promise<BackendModel[]> {
      let file: { size: number; mtimeMs: number };
      try {
        file = await stat(modelPath);
      } catch {
        throw new TesseraError("model_not_found", `model file not found: ${modelPath}`);
      }
      const loaded = loading !== undefined && (await loading.then(() => true, () => false));
      const sha256 = await fileSha256(file.size, file.mtimeMs);
      // An embedding model is served for /v1/embeddings only (and is no reference for spot checks of answers).
      if (await isEmbeddingModel()) return [{ id: modelId, sizeBytes: file.size, loaded, sha256, features: ["embeddings"] }];
      return [{ id: modelId, sizeBytes: file.size, loaded, scoring: true, constrainedScoring: true, sha256, features: [...EMBEDDED_FEATURES] }];
    },
    doStream: stream,
    doGenerate: (request) => collectStream(stream(request)),
    async score(request: ScoreRequest): Promise<ScoreResult> {
      if (request.model !== modelId) throw new TesseraError("model_not_found", `model ${request.model} is not served here (this backend serves ${modelId})`);
      const loaded = await ensureLoaded();
      // A constrained answer is scored under the plan its generation made: the tool prompt and the grammar
      // (verification/design.md "Constrained answers").
      const planned = request.constraint ? await loaded.plan(request.constraint) : undefined;
      if (planned && !planned.ok) throw new TesseraError("bad_request", `constraint: ${planned.message}`, { param: "constraint" });
      const plan: OutputPlan = planned?.ok ? planned.plan : { kind: "free" };
      // The prompt exactly as this backend's generation renders it: a raw prompt as generation fed it (prompt-format.ts
      // `rawPromptTokens`), a chat through the tool prompt (tool-prompt.ts: the callable tools, and tool turns written
      // as generation writes them).
      const prompt = request.rawPrompt
        ? rawPromptTokens(loaded.model, rawPromptOf(request))
        : loaded.formatter.promptTokens(toolPromptMessages(request.messages, plan.kind === "tools" ? plan.tools : [], plan.kind === "tools" && plan.required));
      // A node that claims to have run other prompt ids than this reference renders is caught here (design.md).
      if (request.promptTokens !== undefined && !sameTokens(request.promptTokens, prompt)) {
        throw new PromptMismatchError(request.promptTokens.length, prompt.length);
      }
      if (!scorer) {
        const { createEmbeddedEngine } = await import("../../verification/embedded-engine.js");
        scorer = createEmbeddedEngine({ modelPath, llama: loaded.llama, threads, contextSize: loaded.context.contextSize });
        scorer.catch(() => (scorer = undefined));
      }
      let scores = await (await scorer).score(prompt, request.outputTokens);
      // The top-20 mass a sampled answer's check reads: the whole list's, or under a grammar its allowed share.
      let topMass = scores.positions.map(({ top }) => Math.min(1, top.reduce((sum, t) => sum + Math.exp(t.logprob), 0)));
      if (plan.kind !== "free") {
        const walk = grammarWalk(loaded.model, plan.grammar);
        if (!walk) throw new TesseraError("internal_error", "this node-llama-cpp build offers no grammar state to score a constrained answer under");
        ({ scores, topMass } = rankUnderGrammar(scores, walk, grammarEndIndex(loaded.model, prompt, request.outputTokens, plan.kind)));
      }
      return {
        promptTokens: scores.promptTokens,
        positions: scores.positions.map(({ token, logprob, rank }, i) => ({ token, logprob, rank, topMass: Math.min(1, topMass[i]!) })),
        eos: { logprob: scores.eos.logprob, rank: scores.eos.rank },
      };
    },
    async embed(request) {
      if (request.model !== modelId) throw new TesseraError("model_not_found", `model ${request.model} is not served here (this backend serves ${modelId})`);
      if (!(await isEmbeddingModel())) {
        throw new TesseraError("unsupported_parameter", `model ${modelId} is not an embedding model (its GGUF names no pooling type); use /v1/chat/completions`, { param: "model" });
      }
      const loaded = await ensureLoaded();
      embedder ??= createEmbeddingRunner({ model: loaded.model, threads, contextSize: loaded.context.contextSize, vocabularySize: vocabularySize(loaded.model) });
      return embedder.embed(request.input, request.signal);
    },
    async load() {
      await ensureLoaded();
    },
    engineBuild: () => build,
    async close() {
      closed = true;
      await release();
    },
    async unload() {
      await release();
    },
  };

  /** Disposes whatever is loaded (embedder, scorer, context, model, llama.cpp); a later request loads again unless closed. */
  async function release(): Promise<void> {
    await embedder?.dispose();
    embedder = undefined;
    const scoring = scorer;
    scorer = undefined;
    await scoring?.then((engine) => engine.close(), () => undefined);
    const current = loading;
    loading = undefined;
    if (!current) return;
    const loaded = await current.catch(() => undefined);
    if (!loaded) return;
    await loaded.context.dispose();
    await loaded.model.dispose();
    await loaded.llama.dispose();
  }
}
