/**
 * Scores of one logits row, the same arithmetic for every engine: log-softmax at temperature 1 with no sampler
 * transforms, the top-k, and the exact rank of a token. Both engines hand their raw logits here, so a difference
 * between engines is a difference in logits, never in how they were turned into log-probabilities.
 */
import type { TokenLogprob } from "./types.js";

/** log Σ exp(logits), in double precision (max-shifted, so no overflow). */
export function logSumExp(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/**
 * Rank of `token`, 1 = most likely. Ties are broken by lower token id first, as greedy argmax does (the first
 * maximum wins), so the token greedy picks always has rank 1.
 */
export function rankOf(logits: ArrayLike<number>, token: number): number {
  const value = logits[token];
  let rank = 1;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (v > value || (v === value && i < token)) rank++;
  }
  return rank;
}

/**
 * The k most likely tokens, most likely first (ties: lower id first), with log-probabilities given logZ.
 * One pass keeping a sorted window of k: O(V·k) worst case, O(V) in practice since few values enter the window.
 */
export function topK(logits: ArrayLike<number>, k: number, logZ: number): TokenLogprob[] {
  const n = Math.min(k, logits.length);
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i];
    if (ids.length === n && !(v > vals[n - 1])) continue;
    let j = ids.length === n ? n - 1 : ids.length;
    // Strictly greater moves up: an equal value stays behind the lower id already there.
    while (j > 0 && v > vals[j - 1]) {
      if (j < n) {
        vals[j] = vals[j - 1];
        ids[j] = ids[j - 1];
      }
      j--;
    }
    vals[j] = v;
    ids[j] = i;
  }
  return ids.map((token, i) => ({ token, logprob: vals[i] - logZ }));
}
