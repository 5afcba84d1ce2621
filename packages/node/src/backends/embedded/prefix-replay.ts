import type { LlamaContextSequence, Token } from "node-llama-cpp";

/**
 * Continuations whose prefix is at most this many tokens are replayed one token at a time: exact, at the cost of one
 * decode per token (about a second on a CPU-bound 8B model, and what the first node spent generating them). Longer
 * prefixes are evaluated in one batch: fast, exact for the first few hundred tokens, faithful after. See design.md,
 * "Long prefixes".
 */
export const EXACT_REPLAY_MAX_TOKENS = 64;

/**
 * Brings a fresh sequence to where the node that began the answer stood, and returns what generation must still
 * evaluate (at least one token, so that it has logits to sample from).
 *
 * The first node evaluated the prompt in one batch and then each answer token alone. llama.cpp's numbers for a batch
 * differ from those of single tokens in the last bits, so only the same steps reproduce its state exactly.
 */
export async function replayPrefix(sequence: LlamaContextSequence, prompt: readonly Token[], prefix: readonly Token[]): Promise<Token[]> {
  if (prefix.length === 0 || prefix.length > EXACT_REPLAY_MAX_TOKENS) return [...prompt, ...prefix];
  await sequence.evaluateWithoutGeneratingNewTokens([...prompt]);
  for (const token of prefix.slice(0, -1)) await sequence.evaluateWithoutGeneratingNewTokens([token]);
  return [prefix[prefix.length - 1]!];
}
