import { describe, expect, it } from "vitest";
import { allowedTopMass, rankAmongAllowed, rankUnderGrammar, type GrammarCursor } from "./grammar-ranks.js";
import { TOP_K_SCORED, type ReferenceScores, type TokenLogprob } from "./types.js";

const top = (...tokens: number[]): TokenLogprob[] => tokens.map((token, i) => ({ token, logprob: -0.1 * (i + 1) }));
const OUT = TOP_K_SCORED + 1;

/** A grammar over "positions": at step i only the tokens in allowed[i] may come; EOS (0) only where listed too. */
function cursor(allowed: number[][]): GrammarCursor & { accepted: number[] } {
  const accepted: number[] = [];
  return {
    accepted,
    allows: (t) => (allowed[accepted.length] ?? []).includes(t),
    accept: (t) => {
      if (!(allowed[accepted.length] ?? []).includes(t)) throw new Error(`token ${t} is not allowed`);
      accepted.push(t);
    },
  };
}

function scores(tokens: number[], tops: TokenLogprob[][], eosTop: TokenLogprob[]): ReferenceScores {
  return {
    promptTokens: 3,
    positions: tokens.map((token, i) => ({ token, logprob: -1, rank: 99, top: tops[i]! })),
    eos: { token: 0, logprob: -2, rank: 99, top: eosTop },
  };
}

describe("rankAmongAllowed", () => {
  const allows = (set: number[]) => (t: number) => set.includes(t);
  it("counts only the allowed tokens above the node's", () => {
    expect(rankAmongAllowed(top(5, 6, 7, 8), 7, allows([6, 7, 8]))).toEqual({ rank: 2, decided: false });
    expect(rankAmongAllowed(top(5, 6, 7, 8), 7, allows([7, 8]))).toEqual({ rank: 1, decided: false });
  });
  it("fails a token the grammar forbids, even the reference's own first choice", () => {
    expect(rankAmongAllowed(top(5, 6), 5, allows([6]))).toEqual({ rank: OUT, decided: false });
  });
  it("fails an allowed token outside the top list when some allowed token is in it", () => {
    expect(rankAmongAllowed(top(5, 6), 9, allows([6, 9]))).toEqual({ rank: OUT, decided: false });
  });
  it("cannot judge where the grammar allows nothing of the top list: rank 1, decided by the grammar", () => {
    expect(rankAmongAllowed(top(5, 6), 9, allows([9, 10]))).toEqual({ rank: 1, decided: true });
  });
});

describe("rankUnderGrammar", () => {
  it("walks the grammar along the node's tokens and ranks EOS where the grammar may end", () => {
    const c = cursor([[1, 2], [3], [4, 0]]);
    const out = rankUnderGrammar(scores([2, 3], [top(1, 2), top(7, 8)], top(9, 4, 0)), c, undefined);
    expect(out.scores.positions.map((p) => p.rank)).toEqual([2, 1]);
    expect(out.scores.eos.rank).toBe(2);
    expect(out.grammarDecided).toBe(1);
    expect(c.accepted).toEqual([2, 3]);
    expect(out.scores.positions.map((p) => p.logprob)).toEqual([-1, -1]);
  });

  it("fails EOS where the grammar may not end, whatever the reference thinks of it", () => {
    const out = rankUnderGrammar(scores([1], [top(1)], top(0, 2)), cursor([[1], [2]]), undefined);
    expect(out.scores.eos.rank).toBe(OUT);
  });

  it("a token that breaks the grammar fails, and so does everything after it", () => {
    const out = rankUnderGrammar(scores([1, 9, 3], [top(1), top(9, 2), top(3)], top(0)), cursor([[1], [2], [3], [0]]), undefined);
    expect(out.scores.positions.map((p) => p.rank)).toEqual([1, OUT, OUT]);
    expect(out.scores.eos.rank).toBe(OUT);
  });

  it("an answer that ended at the grammar's end stops there: EOS is the grammar's, tokens past the end fail", () => {
    const ended = rankUnderGrammar(scores([1, 2], [top(1), top(2)], top(7)), cursor([[1], [2], [7, 0]]), 1);
    expect(ended.scores.eos.rank).toBe(1);
    const past = rankUnderGrammar(scores([1, 2, 7], [top(1), top(2), top(7)], top(0)), cursor([[1], [2], [7, 0], [0]]), 1);
    expect(past.scores.positions.map((p) => p.rank)).toEqual([1, 1, OUT]);
    expect(past.scores.eos.rank).toBe(OUT);
  });
});

describe("allowedTopMass (the sampled check's top mass under a grammar)", () => {
  const list = (...probs: Array<[number, number]>): TokenLogprob[] => probs.map(([token, p]) => ({ token, logprob: Math.log(p) }));

  it("is the allowed share of the top list against the most the allowed tokens outside it could hold", () => {
    // Top list 0.9 (so 0.1 outside), allowed 0.3 of it: at most 0.1 / 0.4 of an honest draw lands outside.
    const top = list([1, 0.5], [2, 0.3], [3, 0.1]);
    expect(allowedTopMass(top, (t) => t === 2)).toBeCloseTo(0.3 / 0.4, 12);
    expect(allowedTopMass(top, () => true)).toBeCloseTo(0.9, 12);
  });

  it("is 0 where the grammar allows nothing of the top list (nothing can be learned there)", () => {
    expect(allowedTopMass(list([1, 0.5], [2, 0.3]), () => false)).toBe(0);
  });

  it("is 1 (no honest draw outside) for a token that breaks the grammar and every position after it", () => {
    const g = cursor([[5], [6], [7]]);
    const { topMass } = rankUnderGrammar(scores([5, 9, 7], [top(5, 6), top(6, 9), top(7)], top(0)), g, undefined);
    expect(topMass[0]).toBeGreaterThan(0);
    expect(topMass.slice(1)).toEqual([1, 1]);
  });
});
