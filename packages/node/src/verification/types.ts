/**
 * The narrow interface a reference engine offers verification (see design.md beside this file): score given tokens
 * by teacher forcing, and generate greedily with per-token log-probabilities. Token ids are the model's own; the
 * prompt is the canonical token ids the job carried, evaluated as given (no BOS added, no template applied).
 */

export interface TokenLogprob {
  token: number;
  /** Natural log of the probability, softmax at temperature 1 over the whole vocabulary. */
  logprob: number;
}

/** The reference's view of one output position: the node's token there and how likely the reference found it. */
export interface PositionScore {
  /** The node's token at this position (teacher-forced: the reference saw the node's earlier tokens, not its own). */
  token: number;
  logprob: number;
  /**
   * 1 = the reference's own greedy choice; ties broken by lower id, as greedy does. Exact within the top list; an
   * engine that sees only its top list (embedded) reports TOP_K_SCORED + 1 for any token outside it.
   */
  rank: number;
  /** The reference's most likely tokens here, most likely first (TOP_K_SCORED of them). */
  top: TokenLogprob[];
}

export interface ReferenceScores {
  /** Number of prompt tokens the reference evaluated (the usage a node should report). */
  promptTokens: number;
  /** One per output token, in order. */
  positions: PositionScore[];
  /**
   * The end-of-sequence token at the position after the last output token: was stopping there plausible? With the
   * reference's top list there, as at every position (a constrained answer's EOS is ranked among what its grammar allows).
   */
  eos: { token: number; logprob: number; rank: number; top: TokenLogprob[] };
}

export interface GeneratedToken extends TokenLogprob {
  /** The engine's most likely tokens at this step (at least 5), most likely first. */
  top: TokenLogprob[];
}

export interface Generation {
  /** Output token ids; the end-of-sequence token that ended a `stop` is not included (as the backends report it). */
  tokens: number[];
  finishReason: "stop" | "length";
  /** One per output token. */
  logprobs: GeneratedToken[];
  promptTokens: number;
}

export interface GenerateOptions {
  maxTokens: number;
  /** How many alternatives each step carries (default 5, the k ≥ 5). */
  topLogprobs?: number;
}

export interface VerificationEngine {
  /** "embedded" or "stage": which engine computed the numbers. */
  readonly kind: string;
  readonly eosToken: number;
  readonly vocabSize: number;
  /** Teacher-forces `output` after `prompt` in one batched evaluation and scores every output position. */
  score(prompt: readonly number[], output: readonly number[]): Promise<ReferenceScores>;
  /** Greedy generation (argmax, lowest id on ties) with per-token log-probabilities; stops at EOS or maxTokens. */
  generate(prompt: readonly number[], options: GenerateOptions): Promise<Generation>;
  close(): Promise<void>;
}

/** The reference's top list holds this many tokens: the hard check is "every token is in the reference's top-20". */
export const TOP_K_SCORED = 20;
