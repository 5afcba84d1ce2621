import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { ScoredToken } from "./scored-generation.js";

/**
 * Greedy generation that reports each chosen token's log-probability, for the trust checks: every greedy answer
 * carries them, whether or not its client asked, because the node cannot know which answers the coordinator will
 * check (design.md, "Log-probabilities for the checks").
 *
 * At temperature 0 node-llama-cpp's sampler chain is greedy alone, which changes no logit, so the `confidence` it
 * reports is the model's own probability of the token over the whole vocabulary: the figure the reference scores
 * (equal to the scored path's to the last printed digit, measured). This costs one softmax per token in native code,
 * against the scored path's top-40 logits and draw in JavaScript.
 */
export async function* greedyWithLogprobs(sequence: LlamaContextSequence, input: readonly Token[]): AsyncGenerator<ScoredToken> {
  for await (const next of sequence.evaluateWithMetadata([...input], { confidence: true }, { temperature: 0, yieldEogToken: true })) {
    yield { token: next.token, logprob: Math.min(0, Math.log(next.confidence)), top: [] };
  }
}
