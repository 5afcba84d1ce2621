/**
 * Turns the logits rows of a teacher-forced evaluation into ReferenceScores, and one generation step's row into a
 * GeneratedToken. Engine-independent: an engine hands each row over as a ScoredRow, built either from a dense row
 * of raw logits (denseRow) or from the top of the row plus the normaliser (partialRow, for node-llama-cpp, whose
 * full rows cost ~10 ms each to bring into JavaScript).
 */
import { logSumExp, rankOf, topK } from "./log-softmax.js";
import { TOP_K_SCORED, type GeneratedToken, type PositionScore, type ReferenceScores, type TokenLogprob } from "./types.js";

export interface ScoredRow {
  /** The row's most likely tokens, most likely first (ties: lower id first), at least `k` asked for. */
  top(k: number): TokenLogprob[];
  /** Log-probability of a token (must be in the top list, or one the row was asked to keep). */
  logprob(token: number): number;
  /** 1-based rank; exact within the top list, TOP_K_SCORED + 1 for any token outside it on a partial row. */
  rank(token: number): number;
}

export function denseRow(logits: ArrayLike<number>): ScoredRow {
  const logZ = logSumExp(logits);
  return {
    top: (k) => topK(logits, k, logZ),
    logprob: (token) => logits[token] - logZ,
    rank: (token) => rankOf(logits, token),
  };
}

/**
 * A row known only by some (token, logit) pairs that include its top TOP_K_SCORED, and Σ exp(logit - max) over the
 * whole vocabulary (`totalWeight`). log Z = max + ln(totalWeight).
 */
export function partialRow(pairs: Iterable<[number, number]>, totalWeight: number): ScoredRow {
  const sorted = [...pairs].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  if (sorted.length === 0 || !(totalWeight >= 1)) throw new RangeError("a partial row needs its top logits and a total weight >= 1");
  const logZ = sorted[0][1] + Math.log(totalWeight);
  const byToken = new Map(sorted);
  const topIds = sorted.slice(0, TOP_K_SCORED).map(([t]) => t);
  return {
    top: (k) => sorted.slice(0, Math.min(k, TOP_K_SCORED)).map(([token, logit]) => ({ token, logprob: logit - logZ })),
    logprob: (token) => {
      const logit = byToken.get(token);
      if (logit === undefined) throw new RangeError(`token ${token} was not kept in this row`);
      return logit - logZ;
    },
    rank: (token) => {
      const i = topIds.indexOf(token);
      return i === -1 ? TOP_K_SCORED + 1 : i + 1;
    },
  };
}

/**
 * `rowAt(i)` gives the row predicting output position i, for i = 0..output.length (the last one predicts the
 * token after the output: where EOS is judged).
 */
export function scoreRows(promptTokens: number, output: readonly number[], eosToken: number, rowAt: (i: number) => ScoredRow): ReferenceScores {
  const positions: PositionScore[] = [];
  for (let i = 0; i < output.length; i++) {
    const row = rowAt(i);
    const token = output[i];
    positions.push({ token, logprob: row.logprob(token), rank: row.rank(token), top: row.top(TOP_K_SCORED) });
  }
  const last = rowAt(output.length);
  return { promptTokens, positions, eos: { token: eosToken, logprob: last.logprob(eosToken), rank: last.rank(eosToken), top: last.top(TOP_K_SCORED) } };
}

/** One greedy step: the argmax (first maximum) with its log-probability and the top-k alternatives. */
export function greedyStep(row: ScoredRow, k: number): GeneratedToken {
  const top = row.top(Math.max(k, 1));
  return { token: top[0].token, logprob: top[0].logprob, top: top.slice(0, k) };
}
