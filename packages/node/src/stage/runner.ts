/**
 * One-stage convenience runner: token ids -> embedding -> all layers -> head -> sampling, on one Stage holding
 * every layer. This is what is compared with llama.cpp for correctness and speed.
 */
import { readModelConfig } from "./model-info.js";
import { loadStage, type Stage } from "./stage.js";
import { Sampler, type SamplingOptions } from "./sampler.js";

export interface GenerateOptions {
  maxTokens: number;
  sampling?: SamplingOptions;
  /** Generation stops after emitting one of these (it is included in the result). */
  stopTokens?: readonly number[];
  /** Called with each generated token as it is picked. */
  onToken?: (token: number) => void;
}

export interface StageRunner {
  readonly stage: Stage;
  /** Logits after evaluating `tokens` as a fresh request (a copy, vocabSize long). */
  logits(tokens: readonly number[]): Float32Array;
  /** Evaluates the prompt, then generates up to maxTokens tokens. */
  generate(prompt: readonly number[], options: GenerateOptions): number[];
}

let nextRequest = 0;

export function createRunner(stage: Stage): StageRunner {
  if (!stage.isFirst || !stage.isLast) throw new Error("createRunner needs a stage holding every layer");
  return {
    stage,
    logits(tokens) {
      const id = `runner-${nextRequest++}`;
      try {
        return stage.forward(id, tokens, tokens.map((_, i) => i)).slice();
      } finally {
        stage.dropRequest(id);
      }
    },
    generate(prompt, options) {
      const id = `runner-${nextRequest++}`;
      const sampler = new Sampler(options.sampling);
      const stops = new Set(options.stopTokens ?? []);
      const out: number[] = [];
      const one = new Int32Array(1);
      const pos = new Int32Array(1);
      try {
        let logits = stage.forward(id, prompt, prompt.map((_, i) => i));
        for (let i = 0; i < options.maxTokens; i++) {
          const token = sampler.sample(logits);
          out.push(token);
          options.onToken?.(token);
          if (stops.has(token) || i === options.maxTokens - 1) break;
          one[0] = token;
          pos[0] = prompt.length + i;
          logits = stage.forward(id, one, pos);
        }
        return out;
      } finally {
        stage.dropRequest(id);
      }
    },
  };
}

/** Loads every layer of a GGUF file into one stage and wraps it in a runner. */
export function loadRunner(options: { path: string; maxContext?: number }): StageRunner {
  const { nLayer } = readModelConfig(options.path);
  return createRunner(loadStage({ path: options.path, start: 0, end: nLayer, maxContext: options.maxContext }));
}
