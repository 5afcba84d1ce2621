/**
 * Continuations whose prefix is at most this many tokens are replayed one token at a time, on every backend that can
 * (the embedded engine's sequence, llama-server's slot cache): exact, at the cost of one decode per token, what the
 * first node spent generating them (about a second on a CPU-bound 8B model). Longer prefixes are evaluated in one
 * batch: fast, exact for the first few hundred tokens, faithful after. See embedded/design.md, "Long prefixes".
 *
 * Why it matters: the first node evaluated the prompt in one batch and then each answer token alone. llama.cpp's
 * numbers for a batch differ from those of single tokens in the last bits, so only the same steps reproduce its state
 * exactly, and a batch-evaluated prefix flips a near tie tens or hundreds of tokens later.
 */
export const EXACT_REPLAY_MAX_TOKENS = 64;
