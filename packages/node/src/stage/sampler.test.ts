/**
 * The sampler's top-p nucleus (prefilter + quickselect + sort of the top set) picks exactly the tokens a full sort
 * of the vocabulary picks, for the same seed: peaked and flat distributions, ties, top-p from tiny to almost 1.
 */
import { describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { Sampler, argmax } from "./sampler.js";

/** The straightforward definition: sort every token by probability (ties: lower id), cut at top_p, draw. */
function referenceSample(logits: Float32Array, temperature: number, topP: number, state: { s: number }): number {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const probs = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp((logits[i]! - max) / temperature);
    probs[i] = e;
    sum += e;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  let count = n;
  if (topP < 1) {
    let mass = 0;
    count = 0;
    while (count < n && mass < topP * sum) mass += probs[order[count++]!]!;
    sum = mass;
  } else {
    order.sort((a, b) => a - b);
  }
  // mulberry32, as the sampler's
  state.s = (state.s + 0x6d2b79f5) >>> 0;
  let t = state.s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  let r = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * sum;
  for (let i = 0; i < count; i++) {
    r -= probs[order[i]!]!;
    if (r < 0) return order[i]!;
  }
  return order[count - 1]!;
}

function logitsOf(n: number, spread: number, seed: number, ties = false): Float32Array {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
    out[i] = ties ? Math.round(g * 2) : g * spread;
  }
  return out;
}

describe("Sampler", () => {
  it("greedy is argmax, lowest id on ties", () => {
    expect(new Sampler().sample(Float32Array.of(1, 3, 3, 2))).toBe(1);
    expect(argmax(Float32Array.of(-1, -1))).toBe(0);
  });

  it.each([
    ["peaked (sd 16)", 16, false],
    ["flat (sd 0.5)", 0.5, false],
    ["many ties", 1, true],
  ] as const)("top-p draws exactly what a full sort draws: %s", (_, spread, ties) => {
    for (const [temperature, topP] of [[0.7, 0.9], [1.5, 0.95], [1, 0.5], [0.3, 0.01], [2, 0.999999], [1, 1]] as const) {
      const sampler = new Sampler({ temperature, topP, seed: 7 });
      const state = { s: 7 };
      for (let step = 0; step < 25; step++) {
        const logits = logitsOf(8000, spread, step * 31 + 1, ties);
        expect(sampler.sample(logits)).toBe(referenceSample(logits, temperature, topP, state));
      }
      expect(sampler.rngState).toBe(state.s);
    }
  });

  it("refuses a bad temperature or top_p with bad_request", () => {
    for (const options of [{ temperature: -1 }, { temperature: Infinity }, { topP: 0 }, { topP: 1.5 }, { topP: NaN }]) {
      expect(() => new Sampler(options)).toThrow(TesseraError);
    }
  });
});
