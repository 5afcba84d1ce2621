import type { ChatMessage } from "@tessera/protocol";
import { createPromptFormatter, rawPromptTokens } from "@tessera/node/embedded";
import { getLlama, type Llama, LlamaGrammarEvaluationState, LlamaLogLevel, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";

/**
 * A real model behind the id-level fakes of vLLM and SGLang (fake-vllm-scoring.ts, fake-sglang-scoring.ts): a GGUF
 * (the testkit's tiny models) on node-llama-cpp, CPU, one sequence. It answers what those servers compute from token
 * ids: each position's log-probabilities over the WHOLE vocabulary (full logits, so a token's rank is exact however
 * far down it is, as vLLM reports it), and greedy continuations. Nothing here is made up: a fake built on it scores
 * honestly, so a scorer tested against it is tested against a model's real numbers.
 */
export interface IdLevelModel {
  readonly modelId: string;
  readonly eosToken: number;
  readonly eosText: string;
  readonly bosText: string;
  readonly vocabSize: number;
  readonly contextSize: number;
  /** A text prompt as a completion route tokenises it: BOS first when `addSpecial` and the model adds one. */
  tokenize(text: string, addSpecial: boolean): number[];
  /** A chat, rendered by the model's template (the canonical renderer, as the embedded engine renders it). */
  chatTokens(messages: readonly ChatMessage[]): number[];
  /** One token's text, as servers decode a token alone (`decoded_token`). */
  tokenText(token: number): string;
  /** The text of `tokens`; after `context` (the ids before them) when given, as a server detokenises an answer after its prompt (an SPM piece keeps its leading space). */
  detokenize(tokens: readonly number[], context?: readonly number[]): string;
  /** The next-token distributions after `ids[0..i]` for every i in [from, to): row i predicts ids[i + 1]. */
  rows(ids: readonly number[], from: number, to: number): Promise<Distribution[]>;
  /** Greedy decoding after `ids`: up to `maxTokens` tokens, stopping at EOS unless `ignoreEos`. */
  generate(ids: readonly number[], maxTokens: number, ignoreEos: boolean): Promise<Generated>;
  /**
   * Greedy decoding after `ids` under a llama.cpp grammar (GBNF text, top rule `root`), compiled by node-llama-cpp as the
   * embedded engine compiles it: up to `maxTokens` tokens, stopping at EOS. Throws `GrammarError` when the text does not
   * compile, as a server refuses a grammar it cannot read.
   */
  generateUnderGrammar(ids: readonly number[], maxTokens: number, grammar: string): Promise<GrammarGenerated>;
  close(): Promise<void>;
}

export interface Generated {
  tokens: number[];
  finish: "stop" | "length";
  /** The distribution each generated token was picked from (and, at a stop, the one EOS was picked from last). */
  rows: Distribution[];
}

export interface GrammarGenerated {
  tokens: number[];
  finish: "stop" | "length";
  /** The end-of-generation token it stopped on (finish `stop`). */
  stopToken?: number;
}

/** One position's distribution over the whole vocabulary, best first (ties: lower id first, as llama.cpp's argmax). */
export class Distribution {
  private readonly order: Array<[number, number]>;
  private readonly logZ: number;
  private positions: Map<number, number> | undefined;

  constructor(logits: Map<Token, number>) {
    this.order = [...logits.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]) as Array<[number, number]>;
    const max = this.order[0]![1];
    let sum = 0;
    for (const [, l] of this.order) sum += Math.exp(l - max);
    this.logZ = max + Math.log(sum);
  }

  /** The likeliest token. */
  get best(): number {
    return this.order[0]![0];
  }

  logprob(token: number): number {
    const i = this.index(token);
    return Math.min(0, this.order[i]![1] - this.logZ);
  }

  /** 1-based rank in the whole vocabulary. */
  rank(token: number): number {
    return this.index(token) + 1;
  }

  top(k: number): Array<{ token: number; logprob: number }> {
    return this.order.slice(0, k).map(([token, l]) => ({ token, logprob: Math.min(0, l - this.logZ) }));
  }

  private index(token: number): number {
    this.positions ??= new Map(this.order.map(([t], i) => [t, i]));
    const i = this.positions.get(token);
    if (i === undefined) throw new RangeError(`token ${token} is outside the vocabulary`);
    return i;
  }
}

/** A grammar text node-llama-cpp could not compile. */
export class GrammarError extends Error {}

export interface IdLevelModelOptions {
  modelPath: string;
  /** The name the fake serves it under. */
  modelId: string;
  /** Longest prompt + output (default: the model's training context, at most 2048). */
  contextSize?: number;
}

export async function loadIdLevelModel(options: IdLevelModelOptions): Promise<IdLevelModel> {
  const llama: Llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: options.modelPath });
  } catch (error) {
    await llama.dispose();
    throw error;
  }
  const contextSize = options.contextSize ?? Math.min(model.trainContextSize, 2048);
  const context: LlamaContext = await model.createContext({ contextSize, sequences: 1, threads: 1, flashAttention: false });
  const sequence: LlamaContextSequence = context.getSequence();
  const eos = model.tokens.eos;
  if (eos === null) throw new Error(`${options.modelPath}: no end-of-sequence token`);
  const vocab = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } }).tokenizer?.ggml?.tokens?.length ?? 0;
  const formatter = createPromptFormatter(model);

  // One sequence: requests queue behind each other, as on a server with one slot.
  let tail: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  const check = (ids: readonly number[]) => {
    if (ids.length === 0) throw new RangeError("no input ids");
    if (ids.length > contextSize) throw new RangeError(`${ids.length} ids do not fit the context of ${contextSize}`);
    for (const t of ids) if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new RangeError(`token id ${t} is outside the vocabulary (0..${vocab - 1})`);
  };
  const withLogits = (t: number): [Token, { generateNext: { logits: true } }] => [t as Token, { generateNext: { logits: true } }];
  const rowOf = (result: { next?: { logits?: Map<Token, number> } } | undefined): Distribution => {
    const logits = result?.next?.logits;
    if (!logits || logits.size === 0) throw new Error("node-llama-cpp returned no logits");
    return new Distribution(logits);
  };

  return {
    modelId: options.modelId,
    eosToken: eos,
    eosText: model.tokens.eosString ?? "",
    bosText: model.tokens.bosString ?? "",
    vocabSize: vocab,
    contextSize,
    tokenize(text, addSpecial) {
      return addSpecial ? rawPromptTokens(model, text) : model.tokenize(text, true);
    },
    chatTokens(messages) {
      return formatter.promptTokens([...messages]);
    },
    tokenText(token) {
      return model.detokenize([token as Token], true);
    },
    detokenize(tokens, context) {
      return model.detokenize(tokens as Token[], false, context as Token[] | undefined);
    },
    rows(ids, from, to) {
      return exclusive(async () => {
        check(ids);
        if (from < 0 || to > ids.length || from > to) throw new RangeError(`rows [${from}, ${to}) of ${ids.length} ids`);
        if (from === to) return [];
        await sequence.clearHistory();
        const items = ids.slice(0, to).map((t, i) => (i >= from ? withLogits(t) : (t as Token)));
        const results = await sequence.controlledEvaluate(items);
        const out: Distribution[] = [];
        for (let i = from; i < to; i++) out.push(rowOf(results[i]));
        return out;
      });
    },
    generate(ids, maxTokens, ignoreEos) {
      return exclusive(async () => {
        check(ids);
        if (ids.length + maxTokens > contextSize) throw new RangeError(`${ids.length} ids and ${maxTokens} new tokens do not fit the context of ${contextSize}`);
        await sequence.clearHistory();
        const out: Generated = { tokens: [], finish: "length", rows: [] };
        let items: Array<Token | ReturnType<typeof withLogits>> = ids.map((t, i) => (i === ids.length - 1 ? withLogits(t) : (t as Token)));
        while (out.tokens.length < maxTokens) {
          const results = await sequence.controlledEvaluate(items);
          const row = rowOf(results[items.length - 1]);
          out.rows.push(row);
          const token = row.best;
          if (token === eos && !ignoreEos) {
            out.finish = "stop";
            break;
          }
          out.tokens.push(token);
          items = [withLogits(token)];
        }
        return out;
      });
    },
    generateUnderGrammar(ids, maxTokens, text) {
      return exclusive(async () => {
        check(ids);
        if (ids.length + maxTokens > contextSize) throw new RangeError(`${ids.length} ids and ${maxTokens} new tokens do not fit the context of ${contextSize}`);
        let grammar;
        try {
          grammar = await llama.createGrammar({ grammar: text, rootRuleName: "root" });
        } catch (error) {
          throw new GrammarError(`the grammar does not compile: ${(error as Error).message}`);
        }
        await sequence.clearHistory();
        const out: GrammarGenerated = { tokens: [], finish: "length" };
        const grammarEvaluationState = new LlamaGrammarEvaluationState({ model, grammar });
        for await (const token of sequence.evaluate(ids as Token[], { temperature: 0, yieldEogToken: true, grammarEvaluationState })) {
          if (model.isEogToken(token)) {
            out.finish = "stop";
            out.stopToken = token;
            break;
          }
          out.tokens.push(token);
          if (out.tokens.length >= maxTokens) break;
        }
        return out;
      });
    },
    async close() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
