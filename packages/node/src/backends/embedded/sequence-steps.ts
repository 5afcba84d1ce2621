import { acquireLock } from "lifecycle-utils";
import type { LlamaContextSequence, Token } from "node-llama-cpp";

/**
 * One answer's generation steps on one sequence, each step what node-llama-cpp's `controlledEvaluate` does for one
 * token that asks for its next one: decode the tokens (batched with the context's other sequences), then have
 * llama.cpp's greedy sampler (which changes no logit) pick the next token and report Σ exp(logit − max) over the whole
 * vocabulary (`totalLogitWeight`) and, when asked, the raw logits of the likeliest tokens. Both generation paths that
 * report log-probabilities take their steps here (greedy-logprobs.ts, scored-generation.ts).
 *
 * Why not `controlledEvaluate` itself: it makes a native sampler for each call and frees it after, and a
 * node-llama-cpp 3.22 sampler allocates and zero-fills a candidate array the size of the vocabulary when it is made
 * (`AddonSampler`'s constructor), on the daemon's main thread, its memory returned only when V8 collects the object.
 * On the 50m test file's 32,000 tokens that was up to 2.5 ms of the main thread a token (much of it page faults), and
 * four times the memory on a 128k vocabulary. Here one sampler serves the whole answer, as node-llama-cpp's own
 * `evaluate` does. The price is node-llama-cpp's internal API (`SequenceInternals` below), which is why the package is
 * pinned exactly, and why a missing piece fails by name when the steps are made.
 */
export class SequenceSteps {
  private readonly internals: SequenceInternals;
  private readonly sampler: NativeSampler;
  private disposed = false;

  constructor(sequence: LlamaContextSequence) {
    this.internals = internalsOf(sequence);
    this.sampler = new this.internals.model._llama._bindings.AddonSampler(this.internals.model._model);
    this.sampler.applyConfig(this.internals._resolveSamplerConfig({ temperature: 0 }));
  }

  /**
   * Decodes `tokens` (at least one) and returns what follows the last of them: the greedy choice, Σ exp(logit − max)
   * over the vocabulary, and with `top` the raw logits of the `top` likeliest tokens (best first, as llama.cpp sorts).
   */
  async next(tokens: readonly Token[], top = 0): Promise<Step> {
    if (tokens.length === 0) throw new RangeError("a generation step needs at least one token");
    if (this.disposed) throw new Error("generation steps used after dispose()");
    const s = this.internals;
    const last = tokens.length - 1;
    const logits: boolean[] = [];
    logits[last] = true;
    const filter = top > 0 ? [[], false, false, false, top] : false;
    const lock = await acquireLock([s._lock, "evaluate"]);
    let results: unknown[];
    try {
      results = await s._decodeTokens(
        [...tokens],
        logits,
        EVALUATION_PRIORITY,
        s.tokenMeter,
        { size: s._contextShift.size, strategy: s._contextShift.strategy },
        (batchLogitIndex, tokenIndex) => (tokenIndex === last ? s._context._ctx.sampleToken(batchLogitIndex, this.sampler, false, false, filter, true) : undefined),
        s._takeIntervalCheckpointIfNeededAfterBatch,
      );
    } finally {
      lock.dispose();
    }
    return stepOf(results[last], top);
  }

  /** Frees the sampler; further steps throw. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.sampler.dispose();
  }
}

export interface Step {
  /** The greedy choice: a token of the largest logit (the lowest id among equals, as llama.cpp). */
  token: Token;
  /** Σ exp(logit − max logit) over the whole vocabulary, at least 1. */
  totalLogitWeight: number;
  /** With `top`: [token, raw logit] of the likeliest tokens, best first. */
  logits: Array<[Token, number]>;
}

/** node-llama-cpp's default evaluation priority (`defaultEvaluationPriority`), which `controlledEvaluate` uses too. */
const EVALUATION_PRIORITY = 5;

/** What the native sampler is (node-llama-cpp's `AddonSampler`). */
interface NativeSampler {
  applyConfig(config: object): void;
  dispose(): void;
}

/**
 * The parts of node-llama-cpp 3.22.1 (pinned exactly in package.json) a step uses, as its
 * `LlamaContextSequence.controlledEvaluate` uses them (dist/evaluator/LlamaContext/LlamaContext.js): the sequence's
 * evaluation lock, its decode (batched with the context's other sequences, shifting the context when it is full,
 * taking its checkpoints), the sampler configuration it resolves, and the context's native `sampleToken`, whose answer
 * is `[token, probabilities, confidence, logits, totalLogitWeight]` (logits as a flat [token, value, …] list) when the
 * extra arguments are given.
 */
interface SequenceInternals {
  readonly _lock: object;
  readonly _contextShift: { size: unknown; strategy: unknown };
  readonly _takeIntervalCheckpointIfNeededAfterBatch: unknown;
  readonly tokenMeter: unknown;
  readonly model: { _llama: { _bindings: { AddonSampler: new (model: unknown) => NativeSampler } }; _model: unknown };
  readonly _context: {
    _ctx: {
      sampleToken(batchLogitIndex: number, sampler: NativeSampler, probabilities: boolean, confidence: boolean, logits: false | unknown[], totalLogitWeight: boolean): Promise<unknown>;
    };
  };
  _resolveSamplerConfig(options: { temperature: number }): object;
  _decodeTokens(
    tokens: Token[],
    logits: boolean[],
    evaluationPriority: number,
    tokenMeter: unknown,
    contextShift: { size: unknown; strategy: unknown },
    logitDataMapper: (batchLogitIndex: number, tokenIndex: number) => Promise<unknown> | undefined,
    afterBatchAction: unknown,
  ): Promise<unknown[]>;
}

/** The sequence's internals, checked to be there: a node-llama-cpp other than the pinned one fails here, by name. */
function internalsOf(sequence: LlamaContextSequence): SequenceInternals {
  const s = sequence as unknown as Partial<SequenceInternals>;
  const missing = [
    typeof s._decodeTokens === "function" ? undefined : "_decodeTokens",
    typeof s._resolveSamplerConfig === "function" ? undefined : "_resolveSamplerConfig",
    typeof s._context?._ctx?.sampleToken === "function" ? undefined : "_context._ctx.sampleToken",
    typeof s.model?._llama?._bindings?.AddonSampler === "function" ? undefined : "model._llama._bindings.AddonSampler",
    s._lock !== undefined && s._contextShift !== undefined && typeof s._takeIntervalCheckpointIfNeededAfterBatch === "function" ? undefined : "the sequence's lock, context shift or checkpoints",
  ].filter((name) => name !== undefined);
  if (missing.length > 0) {
    throw new Error(`generation steps need node-llama-cpp 3.22.1's internals, and this node-llama-cpp lacks ${missing.join(", ")}`);
  }
  return s as SequenceInternals;
}

/** A native `sampleToken` answer as a step; anything else is node-llama-cpp failing to sample. */
function stepOf(sampled: unknown, top: number): Step {
  const [token, , , pairs, totalLogitWeight] = Array.isArray(sampled) ? (sampled as unknown[]) : [];
  if (typeof token !== "number" || token < 0 || typeof totalLogitWeight !== "number" || !(totalLogitWeight >= 1)) {
    throw new Error("node-llama-cpp returned no next token");
  }
  const logits: Array<[Token, number]> = [];
  if (top > 0) {
    if (!Array.isArray(pairs) || pairs.length < 2) throw new Error("node-llama-cpp returned no logits for the next token");
    for (let i = 0; i + 1 < pairs.length; i += 2) logits.push([pairs[i] as Token, pairs[i + 1] as number]);
  }
  return { token: token as Token, totalLogitWeight, logits };
}
