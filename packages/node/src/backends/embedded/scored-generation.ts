import { randomInt } from "node:crypto";
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { TokenLogprob } from "@tessera/protocol";
import { Sampler } from "../../stage/sampler.js";
import { SequenceSteps } from "./sequence-steps.js";

/**
 * Generation that knows each token's log-probability under the model, for `logprobs` (and so for the trust checks,
 * whose reference scores tokens the same way: temperature 1, over the whole vocabulary, before any sampler transform).
 *
 * node-llama-cpp's sampler reports probabilities after its own chain (top-k, top-p, temperature), which are not the
 * model's. So each step here (sequence-steps.ts) asks node-llama-cpp for the raw logits of the likeliest
 * SAMPLED_TOP_K tokens plus Σ exp(logit − max) over the whole vocabulary (`totalLogitWeight`, so log Z = max + ln Σ)
 * under its greedy sampler alone, which changes no logit, and draws the token here: argmax at
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

/** Evaluates `input` (at least one token) and yields one scored token per step until the caller stops asking. */
export async function* scoredTokens(sequence: LlamaContextSequence, input: readonly Token[], options: ScoredGenerationOptions): AsyncGenerator<ScoredToken> {
  if (input.length === 0) throw new RangeError("scored generation needs at least one input token");
  const keep = Math.max(SAMPLED_TOP_K, options.topLogprobs);
  const sampler = new Sampler({ temperature: options.temperature, topP: options.topP, seed: options.seed ?? randomInt(2 ** 32) });
  const steps = new SequenceSteps(sequence);
  const row = new Float32Array(keep);
  try {
    let feed: readonly Token[] = input;
    for (;;) {
      const { logits, totalLogitWeight } = await steps.next(feed, keep);
      // Best first; ties to the lower id, as llama.cpp's greedy sampler breaks them.
      const candidates = logits.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      const logZ = candidates[0]![1] + Math.log(totalLogitWeight);
      for (let i = 0; i < candidates.length; i++) row[i] = candidates[i]![1];
      const chosen = candidates[sampler.sample(row.subarray(0, candidates.length))]!;
      yield {
        token: chosen[0],
        logprob: Math.min(0, chosen[1] - logZ),
        top: candidates.slice(0, options.topLogprobs).map(([token, logit]) => ({ token, logprob: Math.min(0, logit - logZ) })),
      };
      feed = [chosen[0]];
    }
  } finally {
    steps.dispose();
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
