/**
 * A constrained answer's scores under its grammar (design.md "Constrained answers"). An answer generated under a
 * grammar (tools, JSON) is the likeliest token the grammar ALLOWS at each step, not the model's likeliest: ranked in
 * the reference's whole top list it would fail honest nodes. So each position's rank counts only the tokens the
 * grammar allows there, walking the grammar along the node's own tokens. Pure: the grammar comes as a cursor.
 */
import { TOP_K_SCORED, type ReferenceScores, type TokenLogprob } from "./types.js";

/** A grammar state walked along the answer: whether a token may come next, and feeding it one that may. */
export interface GrammarCursor {
  allows(token: number): boolean;
  accept(token: number): void;
}

export interface GrammarScoring {
  /** The same log-probabilities (the raw softmax), ranks among the grammar's allowed tokens. */
  scores: ReferenceScores;
  /** Positions (EOS included) where no token of the reference's top list was allowed: the grammar alone decided. */
  grammarDecided: number;
}

/** "Outside the top list": a hard failure of the check. */
const OUTSIDE = TOP_K_SCORED + 1;

/**
 * The rank of `token` among the tokens of `top` the grammar allows:
 * - `token` not allowed: OUTSIDE (the node broke the grammar);
 * - no token of `top` allowed: 1, and `decided` (the grammar alone chose; the position cannot be judged);
 * - else 1 + the allowed tokens of `top` above it, or OUTSIDE when it is not in `top` (an honest greedy node takes the
 *   likeliest allowed token, which is then in the top list).
 */
export function rankAmongAllowed(top: readonly TokenLogprob[], token: number, allows: (token: number) => boolean): { rank: number; decided: boolean } {
  if (!allows(token)) return { rank: OUTSIDE, decided: false };
  let above = 0;
  let any = false;
  for (const t of top) {
    if (t.token === token) return { rank: above + 1, decided: false };
    if (allows(t.token)) {
      above++;
      any = true;
    }
  }
  return any ? { rank: OUTSIDE, decided: false } : { rank: 1, decided: true };
}

/**
 * Re-ranks `scores` (the reference's teacher-forced scores of the answer, each position's top list and EOS's) under the
 * grammar `cursor` starts in. `endsAt`: the index of the token with which the answer's text reached the grammar's end
 * (constrained/constrained-answer.ts), where generation stops by itself. Then:
 * - tokens after it rank OUTSIDE (an honest node writes none), and
 * - EOS ranks 1 when it is the last token: the stop was the grammar's, not a choice of EOS;
 * otherwise EOS is ranked like any token (allowed only where the grammar may end). Once a token breaks the grammar,
 * every later position and EOS rank OUTSIDE: there is no grammar state to judge them in.
 */
export function rankUnderGrammar(scores: ReferenceScores, cursor: GrammarCursor, endsAt: number | undefined): GrammarScoring {
  let grammarDecided = 0;
  let broken = false;
  const positions = scores.positions.map((p, i) => {
    if (broken || (endsAt !== undefined && i > endsAt)) return { ...p, rank: OUTSIDE };
    const judged = rankAmongAllowed(p.top, p.token, (t) => cursor.allows(t));
    if (judged.decided) grammarDecided++;
    if (cursor.allows(p.token)) cursor.accept(p.token);
    else broken = true;
    return { ...p, rank: judged.rank };
  });
  const last = scores.positions.length - 1;
  let eosRank: number;
  if (broken || (endsAt !== undefined && endsAt < last)) eosRank = OUTSIDE;
  else if (endsAt === last) eosRank = 1;
  else {
    const judged = rankAmongAllowed(scores.eos.top, scores.eos.token, (t) => cursor.allows(t));
    if (judged.decided) grammarDecided++;
    eosRank = judged.rank;
  }
  return { scores: { ...scores, positions, eos: { ...scores.eos, rank: eosRank } }, grammarDecided };
}
