import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { EXACT_REPLAY_MAX_TOKENS } from "../exact-replay.js";

/**
 * Brings a fresh sequence to where the node that began the answer stood, and returns what generation must still
 * evaluate (at least one token, so that it has logits to sample from).
 *
 * A prefix of at most EXACT_REPLAY_MAX_TOKENS is fed as the first node fed it: the prompt as one batch, then each token
 * alone (exact-replay.ts says why); a longer one goes in one batch with the prompt.
 */
export async function replayPrefix(sequence: LlamaContextSequence, prompt: readonly Token[], prefix: readonly Token[]): Promise<Token[]> {
  if (prefix.length === 0 || prefix.length > EXACT_REPLAY_MAX_TOKENS) return [...prompt, ...prefix];
  await sequence.evaluateWithoutGeneratingNewTokens([...prompt]);
  for (const token of prefix.slice(0, -1)) await sequence.evaluateWithoutGeneratingNewTokens([token]);
  return [prefix[prefix.length - 1]!];
}
