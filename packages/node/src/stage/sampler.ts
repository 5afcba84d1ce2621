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
    let count = n;
    if (this.topP < 1) {
      for (let i = 0; i < n; i++) order[i] = i;
      const view = order.subarray(0, n);
      view.sort((a, b) => probs[b] - probs[a] || a - b);
      let mass = 0;
      count = 0;
      while (count < n && mass < this.topP * sum) mass += probs[order[count++]];
      sum = mass;
    } else {
      for (let i = 0; i < n; i++) order[i] = i;
    }
    let r = this.random() * sum;
    for (let i = 0; i < count; i++) {
      r -= probs[order[i]];
      if (r < 0) return order[i];
    }
    return order[count - 1];
  }
}
