/**
 * Next-token sampling on the last stage: greedy (argmax, lowest id wins ties) or temperature + top-p with a seeded
 * PRNG, so a request replayed with the same seed picks the same tokens. Buffers are reused across calls.
 */
import { TesseraError } from "@tessera/protocol";

export interface SamplingOptions {
  /** 0 or absent: greedy. */
  temperature?: number;
  /** Nucleus mass in (0, 1]; default 1. */
  topP?: number;
  /** PRNG seed (uint32); default 0. */
  seed?: number;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = logits[0];
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/** The largest |logit| of a row: the scale a sampled answer's logit is judged against (a NaN anywhere gives NaN). */
export function largestMagnitude(logits: Float32Array): number {
  let scale = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = Math.abs(logits[i]);
    if (v > scale) scale = v;
    else if (Number.isNaN(v)) return Number.NaN;
  }
  return scale;
}

export class Sampler {
  private state: number;
  private probs = new Float32Array(0);
  private order = new Uint32Array(0);
  readonly temperature: number;
  readonly topP: number;

  constructor(options: SamplingOptions = {}) {
    this.temperature = options.temperature ?? 0;
    this.topP = options.topP ?? 1;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) throw new TesseraError("bad_request", `temperature must be a finite number >= 0, got ${options.temperature}`);
    if (!(this.topP > 0 && this.topP <= 1)) throw new TesseraError("bad_request", `top_p must be in (0, 1], got ${options.topP}`);
    this.state = (options.seed ?? 0) >>> 0;
  }

  /**
   * The PRNG state (uint32). A pipeline's last stage samples statelessly: the coordinator sends the state with each
   * step and keeps the advanced state the stage answers with (one draw per sampled token when temperature > 0).
   */
  get rngState(): number {
    return this.state;
  }
  set rngState(state: number) {
    this.state = state >>> 0;
  }

  /** mulberry32: a uniform float in [0, 1). */
  private random(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const n = logits.length;
    if (this.probs.length < n) {
      this.probs = new Float32Array(n);
      this.order = new Uint32Array(n);
    }
    const { probs, order } = this;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp((logits[i] - max) / this.temperature);
      probs[i] = e;
      sum += e;
    }
    if (this.topP >= 1) {
      let r = this.random() * sum;
      for (let i = 0; i < n; i++) {
        r -= probs[i];
        if (r < 0) return i;
      }
      return n - 1;
    }
    // Top-p: the nucleus is the shortest prefix, in descending probability (ties: lower id first), whose mass reaches
    // top_p of the whole; the draw walks the nucleus in that order. Sorting the 32 000 tokens for this cost 6.7-8.5 ms
    // a token; the two crossings below find the same cut and the same token without sorting (see crossing()).
    const target = this.topP * sum;
    // Only tokens with probability >= (sum - target) / n can be in the nucleus: all the others together weigh less
    // than sum - target. The filter keeps 1e-6 of the sum in hand for the float32 rounding of the probabilities.
    const floor = (sum * (1 - 1e-6) - target) / n;
    let candidates = 0;
    for (let i = 0; i < n; i++) if (probs[i] >= floor) order[candidates++] = i;
    const count = this.crossing(candidates, target, false) + 1;
    let mass = 0;
    for (let i = 0; i < count; i++) mass += probs[order[i]];
    return order[this.crossing(count, this.random() * mass, true)];
  }

  /**
   * For the tokens order[0..len), taken in descending probability (ties: lower id first): the position at which
   * their running mass first reaches `threshold` (exceeds it, when `strict`). Rearranges order[0..len) so that the
   * tokens before that position come first (in no particular order) and returns the position; the last one when the
   * threshold is past the total. A quickselect on mass: partition around a pivot, keep the side the crossing is in,
   * then sort only the last few; expected time linear in len.
   */
  private crossing(len: number, threshold: number, strict: boolean): number {
    const { probs, order } = this;
    const reached = (m: number) => (strict ? m > threshold : m >= threshold);
    const before = (a: number, b: number) => probs[a] > probs[b] || (probs[a] === probs[b] && a < b);
    const swap = (i: number, j: number) => {
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    };
    // Invariant: order[0..lo) come before order[lo..hi), which come before order[hi..len); acc = mass(0..lo) has not reached the threshold.
    let lo = 0;
    let hi = len;
    let acc = 0;
    while (hi - lo > 16) {
      // Median of three as the pivot, moved to the end of the range.
      const mid = (lo + hi) >>> 1;
      if (before(order[mid], order[lo])) swap(mid, lo);
      if (before(order[hi - 1], order[lo])) swap(hi - 1, lo);
      if (before(order[hi - 1], order[mid])) swap(hi - 1, mid);
      swap(mid, hi - 1);
      const pivot = order[hi - 1];
      const pivotProb = probs[pivot];
      let store = lo;
      let mass = 0;
      for (let i = lo; i < hi - 1; i++) {
        const id = order[i];
        const p = probs[id];
        if (p > pivotProb || (p === pivotProb && id < pivot)) {
          mass += p;
          order[i] = order[store];
          order[store++] = id;
        }
      }
      swap(store, hi - 1);
      if (reached(acc + mass)) hi = store;
      else if (reached(acc + mass + pivotProb)) return store;
      else {
        acc += mass + pivotProb;
        lo = store + 1;
      }
    }
    order.subarray(lo, hi).sort((a, b) => probs[b] - probs[a] || a - b);
    for (let i = lo; i < hi; i++) {
      acc += probs[order[i]];
      if (reached(acc)) return i;
    }
    return len - 1;
  }
}
