import { describe, expect, it } from "vitest";
import { ACTIVATION_FLAG_SAMPLED, decodeActivationFrame, encodeActivationFrame, type DecodedActivationFrame } from "@tessera/protocol";
import { LAST_SPAN_LOGIT_TOLERANCE, STAGE_CHECK_TOLERANCE, stageVerdict } from "./stage-check-verdict.js";

const ROWS = 3;
const COLS = 8;

function hidden(values: (i: number) => number, seq = 0, rows = ROWS, cols = COLS): DecodedActivationFrame {
  return decodeActivationFrame(encodeActivationFrame({ requestId: "r", stageId: 1, seq, rows, cols, positions: Int32Array.from({ length: rows }, (_, i) => i), dtype: "f32", data: Float32Array.from({ length: rows * cols }, (_, i) => values(i)) }));
}
function tokens(ids: number[]): DecodedActivationFrame {
  return decodeActivationFrame(encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: ids.length, cols: 1, positions: Int32Array.from(ids, (_, i) => i), dtype: "i32", data: Int32Array.from(ids) }));
}
function sampled(token: number, rngState: number, seq = 0, tokenLogit = 12.5, logitScale = 20): DecodedActivationFrame {
  return decodeActivationFrame(
    encodeActivationFrame({ requestId: "r", stageId: 1, seq, rows: 1, cols: 1, positions: Int32Array.of(2), dtype: "i32", data: Int32Array.of(token), flags: ACTIVATION_FLAG_SAMPLED, rngState, tokenLogit, logitScale }),
  );
}

const input = hidden((i) => 10 + (i % 5)); // a large residual stream
const contribution = (i: number) => Math.sin(i); // what the span adds to it
const replayed = hidden((i) => 10 + (i % 5) + contribution(i));

describe("a span that hands on hidden states", () => {
  it("passes when it handed on the reference's values, or within the tolerance of its contribution", () => {
    expect(stageVerdict({ input, claimed: replayed, replayed })).toMatchObject({ passed: true, relativeError: 0 });
    const near = hidden((i) => 10 + (i % 5) + contribution(i) * (1 + STAGE_CHECK_TOLERANCE / 2));
    expect(stageVerdict({ input, claimed: near, replayed }).passed).toBe(true);
  });

  it("fails a stage whose contribution is off by more than the tolerance, though its output is close to its input", () => {
    // 10 % off in the contribution is ~1 % of the output: judged against the contribution, it is a lie.
    const off = hidden((i) => 10 + (i % 5) + contribution(i) * 1.1);
    const v = stageVerdict({ input, claimed: off, replayed });
    expect(v.passed).toBe(false);
    expect(v.relativeError).toBeCloseTo(0.1, 5);
    expect(v.failures[0]).toMatch(/relative error of the span's contribution 0\.100 > /);
  });

  it("fails a skipped span (its input handed on as is), garbage and non-finite values", () => {
    expect(stageVerdict({ input, claimed: input, replayed }).relativeError).toBeCloseTo(1, 5);
    expect(stageVerdict({ input, claimed: hidden((i) => (i * 7919) % 13), replayed }).passed).toBe(false);
    const nan = stageVerdict({ input, claimed: hidden((i) => (i === 5 ? Number.NaN : replayed.data[i]!)), replayed });
    expect(nan).toMatchObject({ passed: false, relativeError: Number.POSITIVE_INFINITY });
    expect(stageVerdict({ input, claimed: hidden(() => 1, 0, ROWS, COLS * 2), replayed }).failures[0]).toMatch(/handed on 3 x 16 f32, the reference 3 x 8/);
  });

  it("the first span (token ids in) is judged against its whole output", () => {
    const out = hidden(contribution);
    expect(stageVerdict({ input: tokens([1, 2, 3]), claimed: out, replayed: out }).passed).toBe(true);
    expect(stageVerdict({ input: tokens([1, 2, 3]), claimed: hidden((i) => contribution(i) * 1.5), replayed: out }).relativeError).toBeCloseTo(0.5, 5);
  });

  it("throws bad_request, judging nothing, when the reference's answer cannot be compared", () => {
    const bad = [
      [hidden(contribution, 0, ROWS - 1), /replay answer: 2 rows, expected 3/],
      [hidden(contribution, 0, ROWS, COLS + 1), /9 values a row, the span's input has 8/],
      [hidden(contribution, 1), /replay answer: step 1, expected 0/],
      [hidden((i) => (i === 2 ? Number.POSITIVE_INFINITY : 0)), /non-finite value at 2/],
      [sampled(5, 1), /a token where hidden states were expected/],
    ] as const;
    for (const [answer, message] of bad) {
      expect(() => stageVerdict({ input, claimed: replayed, replayed: answer })).toThrow(message);
    }
  });
});

describe("the last span (a sampled token)", () => {
  const fed = hidden(contribution, 0, 1);
  it("passes on the same token and PRNG state, fails on another token or state", () => {
    expect(stageVerdict({ input: fed, claimed: sampled(42, 7), replayed: sampled(42, 7) }).passed).toBe(true);
    expect(stageVerdict({ input: fed, claimed: sampled(41, 7), replayed: sampled(42, 7) }).failures).toEqual(["sampled token 41, the reference 42"]);
    expect(stageVerdict({ input: fed, claimed: sampled(42, 8), replayed: sampled(42, 7) }).passed).toBe(false);
  });
  it("judges the token's logit against the reference row's scale: the honest token with a quantised logit fails", () => {
    const within = 12.5 + 0.9 * LAST_SPAN_LOGIT_TOLERANCE * 20;
    const beyond = 12.5 - 1.5 * LAST_SPAN_LOGIT_TOLERANCE * 20;
    const near = stageVerdict({ input: fed, claimed: sampled(42, 7, 0, within), replayed: sampled(42, 7) });
    expect(near.passed).toBe(true);
    expect(near.relativeError).toBeCloseTo(0.9 * LAST_SPAN_LOGIT_TOLERANCE, 9);
    const off = stageVerdict({ input: fed, claimed: sampled(42, 7, 0, beyond), replayed: sampled(42, 7) });
    expect(off.passed).toBe(false);
    expect(off.failures[0]).toMatch(/sampled token's logit .* of the row's scale > /);
    // Another token fails on the token; its logit is not compared (it is another token's).
    expect(stageVerdict({ input: fed, claimed: sampled(41, 7, 0, 99), replayed: sampled(42, 7) }).relativeError).toBeUndefined();
    // A NaN or an infinity claimed fails, never passes as NaN.
    for (const garbage of [Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(stageVerdict({ input: fed, claimed: sampled(42, 7, 0, garbage), replayed: sampled(42, 7) })).toMatchObject({ passed: false, relativeError: Number.POSITIVE_INFINITY });
    }
  });
  it("throws when the reference answered hidden states instead of a token, or a logit it cannot be judged by", () => {
    expect(() => stageVerdict({ input: fed, claimed: sampled(42, 7), replayed: hidden(contribution, 0, 1) })).toThrow(/expected one sampled token/);
    for (const [tokenLogit, scale] of [[Number.NaN, 20], [12.5, 0], [12.5, Number.POSITIVE_INFINITY]] as const) {
      expect(() => stageVerdict({ input: fed, claimed: sampled(42, 7), replayed: sampled(42, 7, 0, tokenLogit, scale) })).toThrow(/not usable/);
    }
  });
});
