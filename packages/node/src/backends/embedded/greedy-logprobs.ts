import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { ScoredToken } from "./scored-generation.js";
import { SequenceSteps } from "./sequence-steps.js";

/**
 * Greedy generation that reports each chosen token's log-probability, for the trust checks: every greedy answer
 * carries them, whether or not its client asked, because the node cannot know which answers the coordinator will
 * check (design.md, "Log-probabilities for the checks").
 *
 * Each step (sequence-steps.ts) takes llama.cpp's greedy choice and Σ exp(logit − max) over the whole vocabulary
 * (`totalLogitWeight`). Greedy picks a token of the largest logit, so its log-probability is exactly −ln Σ: the
 * model's own, over the whole vocabulary, the figure the reference scores. This is one pass over the logits in
 * native code, on the engine's thread; nothing is sorted.
 */
export async function* greedyWithLogprobs(sequence: LlamaContextSequence, input: readonly Token[]): AsyncGenerator<ScoredToken> {
  if (input.length === 0) throw new RangeError("greedy generation needs at least one input token");
  const steps = new SequenceSteps(sequence);
  try {
    let feed: readonly Token[] = input;
    for (;;) {
      const { token, totalLogitWeight } = await steps.next(feed);
      yield { token, logprob: Math.min(0, -Math.log(totalLogitWeight)), top: [] };
      feed = [token];
    }
  } finally {
    steps.dispose();
  }
}
