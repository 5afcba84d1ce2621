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
  /**
   * Per position, the share of the top list a SAMPLED answer's bound may count as "inside" under the grammar
   * (`allowedTopMass`): what the sampled check (coordinator trust/sampled-check.ts) reads as the top-20 mass.
   */
  topMass: number[];
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
 * The top-20 mass a sampled answer's check may use at a position under a grammar. An honest sampler draws from the
 * model's distribution restricted to the allowed tokens (then tempered, T ≤ 1, and cut by top_p, which the check
 * bounds as before). With A the mass (at T = 1) of the allowed tokens in the top list and R = 1 − the top list's mass
 * (every token outside it), the allowed tokens outside the top list hold at most R, so the chance of drawing one is
 * at most R / (A + R): the position reads as a top mass of A / (A + R). No allowed token in the top list: 0 (the
 * check learns nothing there). Pure.
 */
export function allowedTopMass(top: readonly TokenLogprob[], allows: (token: number) => boolean): number {
  let whole = 0;
  let allowed = 0;
  for (const t of top) {
    const p = Math.exp(t.logprob);
    whole += p;
    if (allows(t.token)) allowed += p;
  }
  if (allowed === 0) return 0;
  return allowed / (allowed + Math.max(0, 1 - whole));
}

/**
 * Re-ranks `scores` (the reference's teacher-forced scores of the answer, each position's top list and EOS's) under the
 * grammar `cursor` starts in. `endsAt`: the index of the token with which the answer's text reached the grammar's end
 * (constrained/constrained-answer.ts), where generation stops by itself. Then:
 * - tokens after it rank OUTSIDE (an honest node writes none), and
 * - EOS ranks 1 when it is the last token: the stop was the grammar's, not a choice of EOS;
 * otherwise EOS is ranked like any token (allowed only where the grammar may end). Once a token breaks the grammar,
 * every later position and EOS rank OUTSIDE: there is no grammar state to judge them in. Such a position's top mass
 * is 1: no honest sampler, at any temperature, writes a token the grammar forbids.
 */
export function rankUnderGrammar(scores: ReferenceScores, cursor: GrammarCursor, endsAt: number | undefined): GrammarScoring {
  let grammarDecided = 0;
  let broken = false;
  const topMass: number[] = [];
  const positions = scores.positions.map((p, i) => {
    if (broken || (endsAt !== undefined && i > endsAt)) {
      topMass.push(1);
      return { ...p, rank: OUTSIDE };
    }
    const allows = (t: number) => cursor.allows(t);
    const judged = rankAmongAllowed(p.top, p.token, allows);
    if (judged.decided) grammarDecided++;
    if (cursor.allows(p.token)) {
      topMass.push(allowedTopMass(p.top, allows));
      cursor.accept(p.token);
    } else {
      topMass.push(1);
      broken = true;
    }
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
  return { scores: { ...scores, positions, eos: { ...scores.eos, rank: eosRank } }, grammarDecided, topMass };
}
