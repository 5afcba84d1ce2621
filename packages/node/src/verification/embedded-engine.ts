/**
 * The embedded engine (node-llama-cpp, CPU) as a verification engine.
 *
 * Scoring is ONE batched evaluation of prompt + output (`LlamaContextSequence.controlledEvaluate`). For each row that
 * predicts an output position it asks for the raw logits of the top TOP_K_SCORED tokens, of the node's token and of
 * EOS, plus Σ exp(logit − max) over the whole vocabulary (`totalLogitWeight`), from which log Z = max + ln Σ. With no
 * sampling options node-llama-cpp 3.22 applies only its greedy sampler, which selects without changing a logit, so
 * these are the model's logits at temperature 1. The full row (`logits: true`) would give exact ranks beyond the top
 * list, but costs ~11 ms a row to bring into JavaScript against ~3.4 ms for this filter (measured on the 50m model,
 * 33 rows: 442 ms against 174 ms, the evaluation itself 60 ms).
 */
import { TesseraError } from "@tessera/protocol";
import { getLlama, type Llama, LlamaLogLevel, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import { greedyStep, partialRow, scoreRows, type ScoredRow } from "./score-rows.js";
import { checkVocabulary, oneAtATime } from "./engine-guards.js";
import { TOP_K_SCORED, type Generation, type GenerateOptions, type ReferenceScores, type VerificationEngine } from "./types.js";

export interface EmbeddedEngineOptions {
  modelPath: string;
  /** llama.cpp threads (default 1: see ../backends/embedded/design.md on spin-waiting threads). */
  threads?: number;
  /** Longest prompt + output (default 1024). */
  contextSize?: number;
  /** A loaded llama.cpp binding to share (tests and the bench load one); otherwise the CPU prebuilt is loaded. */
  llama?: Llama;
}

type ScoredItem = [Token, { generateNext: { logits: { filter: { tokens: Token[]; includeTop: number } }; totalLogitWeight: true } }];

function scoredItem(token: number, keep: number[]): ScoredItem {
  return [token as Token, { generateNext: { logits: { filter: { tokens: keep as Token[], includeTop: TOP_K_SCORED } }, totalLogitWeight: true } }];
}

function rowOf(result: { next: { logits?: Map<Token, number>; totalLogitWeight?: number } } | undefined): ScoredRow {
  const logits = result?.next.logits;
  const weight = result?.next.totalLogitWeight;
  if (!logits || weight === undefined) throw new TesseraError("internal_error", "node-llama-cpp returned no logits for a scored position");
  return partialRow(logits as Map<number, number>, weight);
}

export async function createEmbeddedEngine(options: EmbeddedEngineOptions): Promise<VerificationEngine> {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new TesseraError("bad_request", `threads must be a positive integer, got ${threads}`);
  const ownLlama = !options.llama;
  const llama = options.llama ?? (await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }));
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: options.modelPath });
  } catch (error) {
    if (ownLlama) await llama.dispose();
    throw new TesseraError("bad_request", `could not load model ${options.modelPath}: ${(error as Error).message}`, { cause: error });
  }
  // Flash attention off: the stage runtime follows llama.cpp's non-flash attention numerics (../stage/design.md).
  const contextSize = options.contextSize ?? 1024;
  const context: LlamaContext = await model.createContext({ contextSize, sequences: 1, threads, flashAttention: false });
  const sequence: LlamaContextSequence = context.getSequence();
  const eos = model.tokens.eos;
  if (eos === null) throw new TesseraError("bad_request", `${options.modelPath}: the model declares no end-of-sequence token`);
  const vocab = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } }).tokenizer?.ggml?.tokens?.length ?? 0;
  if (vocab === 0) throw new TesseraError("bad_request", `${options.modelPath}: the model has no vocabulary`);

  // One sequence, one job at a time: calls queue behind each other.
  const exclusive = oneAtATime();

  // node-llama-cpp would shift the context (drop early tokens) rather than fail, and scores past a shift are not the
  // model's scores of this prompt: refuse instead.
  function checkFits(tokens: number): void {
    if (tokens > contextSize) throw new TesseraError("bad_request", `${tokens} tokens do not fit the scoring context of ${contextSize}`);
  }

  const checkTokens = (name: string, tokens: readonly number[]): void => checkVocabulary(name, tokens, vocab);

  return {
    kind: "embedded",
    eosToken: eos,
    vocabSize: vocab,
    score(prompt, output): Promise<ReferenceScores> {
      return exclusive(async () => {
        if (prompt.length === 0) throw new TesseraError("bad_request", "scoring needs at least one prompt token");
        checkTokens("prompt", prompt);
        checkTokens("output", output);
        checkFits(prompt.length + output.length);
        await sequence.clearHistory();
        const p = prompt.length;
        const all = [...prompt, ...output];
        // Row i (i >= p - 1) predicts all[i + 1]: keep that token's logit, and EOS's for the stop check.
        const items = all.map((t, i) => (i >= p - 1 ? scoredItem(t, i + 1 < all.length ? [all[i + 1], eos] : [eos]) : (t as Token)));
        const results = await sequence.controlledEvaluate(items);
        return scoreRows(p, output, eos, (i) => rowOf(results[p - 1 + i]));
      });
    },
    generate(prompt, opts: GenerateOptions): Promise<Generation> {
      return exclusive(async () => {
        if (prompt.length === 0) throw new TesseraError("bad_request", "generation needs at least one prompt token");
        checkTokens("prompt", prompt);
        const k = opts.topLogprobs ?? 5;
        if (k > TOP_K_SCORED) throw new TesseraError("bad_request", `topLogprobs is at most ${TOP_K_SCORED}, got ${k}`);
        checkFits(prompt.length + opts.maxTokens);
        await sequence.clearHistory();
        const out: Generation = { tokens: [], finishReason: "length", logprobs: [], promptTokens: prompt.length };
        const last = prompt.length - 1;
        let items: Array<Token | ScoredItem> = prompt.map((t, i) => (i === last ? scoredItem(t, [eos]) : (t as Token)));
        for (let i = 0; i < opts.maxTokens; i++) {
          const results = await sequence.controlledEvaluate(items);
          const step = greedyStep(rowOf(results[items.length - 1]), k);
          if (step.token === eos) {
            out.finishReason = "stop";
            break;
          }
          out.tokens.push(step.token);
          out.logprobs.push(step);
          items = [scoredItem(step.token, [eos])];
        }
        return out;
      });
    },
    async close() {
      await exclusive(async () => {
        await context.dispose();
        await model.dispose();
        if (ownLlama) await llama.dispose();
      });
    },
  };
}
