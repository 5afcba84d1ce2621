import { randomInt } from "node:crypto";
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { TokenLogprob } from "@tessera/protocol";
import { Sampler } from "../../stage/sampler.js";

/**
 * Generation that knows each token's log-probability under the model, for `logprobs` (and so for the trust checks,
 * whose reference scores tokens the same way: temperature 1, over the whole vocabulary, before any sampler transform).
 *
 * node-llama-cpp's sampler reports probabilities after its own chain (top-k, top-p, temperature), which are not the
 * model's. So each step here asks node-llama-cpp for the raw logits of the likeliest SAMPLED_TOP_K tokens plus
 * Σ exp(logit − max) over the whole vocabulary (`totalLogitWeight`, so log Z = max + ln Σ), with no sampling options
 * (node-llama-cpp then applies only its greedy sampler, which changes no logit), and draws the token here: argmax at
 * temperature 0 (lowest id on ties, as llama.cpp), else the stage runtime's seeded sampler (temperature, then top-p)
 * over those candidates, which is node-llama-cpp's own default of top-k 40. The same seed replays the same tokens on
 * this path; it is not the stream node-llama-cpp's sampler would draw, which is why this path is used only when asked.
 * Grammars (response_format, tools) do not run here: node-llama-cpp applies them only inside its sampler.
 */
export const SAMPLED_TOP_K = 40;

export interface ScoredToken {
  token: Token;
  /** Log-probability of the token under the model. */
  logprob: number;
  /** The likeliest tokens at this position, best first, as many as asked. */
  top: Array<{ token: Token; logprob: number }>;
}

export interface ScoredGenerationOptions {
  temperature: number;
  topP: number;
  seed?: number;
  /** Alternatives to report per token (≤ SAMPLED_TOP_K). */
  topLogprobs: number;
}

type ScoredItem = [Token, { generateNext: { logits: { filter: { tokens: Token[]; includeTop: number } }; totalLogitWeight: true } }];

/** Evaluates `input` (at least one token) and yields one scored token per step until the caller stops asking. */
export async function* scoredTokens(sequence: LlamaContextSequence, input: readonly Token[], options: ScoredGenerationOptions): AsyncGenerator<ScoredToken> {
  if (input.length === 0) throw new RangeError("scored generation needs at least one input token");
  const keep = Math.max(SAMPLED_TOP_K, options.topLogprobs);
  const scored = (token: Token): ScoredItem => [token, { generateNext: { logits: { filter: { tokens: [], includeTop: keep } }, totalLogitWeight: true } }];
  const sampler = new Sampler({ temperature: options.temperature, topP: options.topP, seed: options.seed ?? randomInt(2 ** 32) });
  let items: Array<Token | ScoredItem> = [...input.slice(0, -1), scored(input[input.length - 1]!)];
  const row = new Float32Array(keep);
  for (;;) {
    const results = await sequence.controlledEvaluate(items);
    const next = results[items.length - 1]?.next;
    const logits = next?.logits;
    const weight = next?.totalLogitWeight;
    if (!logits || logits.size === 0 || weight === undefined || !(weight >= 1)) throw new Error("node-llama-cpp returned no logits for the next token");
    // Best first; ties to the lower id, as llama.cpp's greedy sampler breaks them.
    const candidates = [...logits.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const logZ = candidates[0]![1] + Math.log(weight);
    for (let i = 0; i < candidates.length; i++) row[i] = candidates[i]![1];
    const chosen = candidates[sampler.sample(row.subarray(0, candidates.length))]!;
    yield {
      token: chosen[0],
      logprob: Math.min(0, chosen[1] - logZ),
      top: candidates.slice(0, options.topLogprobs).map(([token, logit]) => ({ token, logprob: Math.min(0, logit - logZ) })),
    };
    items = [scored(chosen[0])];
  }
}

/**
 * The scored tokens of one text delta as a client sees them: each token's own text (decoded after the tokens before
 * it, so a SentencePiece space comes out as in the answer) and its alternatives' texts at the same place.
 */
export function tokenLogprobs(model: LlamaModel, scored: readonly ScoredToken[], before: readonly Token[]): TokenLogprob[] {
  const history = [...before.slice(-16)];
  return scored.map((s) => {
    const piece = (token: Token) => model.detokenize([token], false, history);
    const entry: TokenLogprob = {
      token: piece(s.token),
      logprob: s.logprob,
      top_logprobs: s.top.map((t) => ({ token: piece(t.token), logprob: t.logprob })),
    };
    history.push(s.token);
    if (history.length > 16) history.shift();
    return entry;
  });
}
