import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token, getLlama } from "node-llama-cpp";
import { makeTinyModel } from "@tessera/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { greedyWithLogprobs } from "./greedy-logprobs.js";
import { SequenceSteps } from "./sequence-steps.js";

let dir: string;
let model: LlamaModel;
let context: LlamaContext;
let prompt: Token[];

interface SamplerClass {
  new (model: unknown): { dispose(): void };
}
interface Bindings {
  AddonSampler: SamplerClass;
}

/** Runs `body` with node-llama-cpp's native sampler class counting how many samplers are made and freed. */
async function countingSamplers<T>(body: () => Promise<T>): Promise<{ result: T; made: number; freed: number }> {
  const bindings = (model as unknown as { _llama: { _bindings: Bindings } })._llama._bindings;
  const Real = bindings.AddonSampler;
  const counts = { made: 0, freed: 0 };
  bindings.AddonSampler = class extends Real {
    constructor(m: unknown) {
      super(m);
      counts.made++;
    }
    override dispose(): void {
      counts.freed++;
      super.dispose();
    }
  };
  try {
    return { result: await body(), ...counts };
  } finally {
    bindings.AddonSampler = Real;
  }
}

/** node-llama-cpp's public step, one call a token: the greedy token and Σ exp(logit − max) after `tokens`. */
async function controlledSteps(sequence: LlamaContextSequence, input: Token[], count: number): Promise<Array<[Token, number]>> {
  const out: Array<[Token, number]> = [];
  let items: Array<Token | [Token, { generateNext: { token: true; totalLogitWeight: true } }]> = [
    ...input.slice(0, -1),
    [input.at(-1)!, { generateNext: { token: true, totalLogitWeight: true } }],
  ];
  while (out.length < count) {
    const next = (await sequence.controlledEvaluate(items))[items.length - 1]?.next;
    out.push([next!.token!, next!.totalLogitWeight!]);
    items = [[next!.token!, { generateNext: { token: true, totalLogitWeight: true } }]];
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-steps-"));
  const path = (await makeTinyModel({ path: join(dir, "tiny-steps.gguf"), seed: 11, vocab: "spm" })).path;
  const llama = await getLlama({ gpu: false, build: "never" });
  model = await llama.loadModel({ modelPath: path });
  context = await model.createContext({ contextSize: 256, sequences: 2, threads: 1 });
  prompt = model.tokenize("Once upon a time a fox", true) as Token[];
});
afterAll(async () => {
  await context?.dispose();
  await model?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("generation steps on one sequence", () => {
  it("one native sampler serves a whole answer, and each step is what controlledEvaluate answers, which makes one a token", async () => {
    const tokens = 24;
    const own = context.getSequence();
    const viaSteps = await countingSamplers(async () => {
      const steps = new SequenceSteps(own);
      const out: Array<[Token, number]> = [];
      let feed: Token[] = prompt;
      try {
        while (out.length < tokens) {
          const step = await steps.next(feed);
          out.push([step.token, step.totalLogitWeight]);
          feed = [step.token];
        }
      } finally {
        steps.dispose();
      }
      return out;
    });
    own.dispose();
    const reference = context.getSequence();
    const viaControlled = await countingSamplers(() => controlledSteps(reference, prompt, tokens));
    reference.dispose();

    expect(viaSteps.result).toEqual(viaControlled.result);
    expect(new Set(viaSteps.result.map(([token]) => token)).size).toBeGreaterThan(3);
    expect(viaSteps.result.every(([, weight]) => weight >= 1)).toBe(true);
    expect({ made: viaSteps.made, freed: viaSteps.freed }).toEqual({ made: 1, freed: 1 });
    expect(viaControlled.made).toBe(tokens);
  });

  it("the likeliest logits come best first, and the greedy token is the first of them", async () => {
    const sequence = context.getSequence();
    const steps = new SequenceSteps(sequence);
    try {
      const step = await steps.next(prompt, 8);
      expect(step.logits).toHaveLength(8);
      expect(step.logits[0]![0]).toBe(step.token);
      for (let i = 1; i < step.logits.length; i++) expect(step.logits[i]![1]).toBeLessThanOrEqual(step.logits[i - 1]![1]);
      // Σ exp(logit − max) over the vocabulary is at least the sum over these eight.
      const max = step.logits[0]![1];
      expect(step.totalLogitWeight).toBeGreaterThanOrEqual(step.logits.reduce((sum, [, logit]) => sum + Math.exp(logit - max), 0) * (1 - 1e-6));
      expect((await steps.next([step.token])).logits).toEqual([]);
    } finally {
      steps.dispose();
      sequence.dispose();
    }
  });

  it("a greedy answer runs the engine one token ahead, never past its limit, and frees its sampler when its reader stops", async () => {
    const take = async (sequence: LlamaContextSequence, limit: number | undefined) =>
      countingSamplers(async () => {
        const got: number[] = [];
        for await (const scored of greedyWithLogprobs(sequence, prompt, limit)) {
          got.push(scored.logprob);
          if (got.length === 5) break;
        }
        return got;
      });
    const unlimited = context.getSequence();
    const ahead = await take(unlimited, undefined);
    // Five tokens taken, and the fifth already decoded: the step after it started before the reader stopped.
    expect(unlimited.nextTokenIndex).toBe(prompt.length + 5);
    unlimited.dispose();
    const limited = context.getSequence();
    const atLimit = await take(limited, 5);
    // The fifth was the last the reader would take: not decoded.
    expect(limited.nextTokenIndex).toBe(prompt.length + 4);
    limited.dispose();
    for (const { result, made, freed } of [ahead, atLimit]) {
      expect(result).toHaveLength(5);
      expect(result.every((logprob) => logprob <= 0 && Number.isFinite(logprob))).toBe(true);
      expect({ made, freed }).toEqual({ made: 1, freed: 1 });
    }
    expect(atLimit.result).toEqual(ahead.result);
  });

  it("refuses a step of no tokens, a step after dispose, and a node-llama-cpp without the internals it needs", async () => {
    const sequence = context.getSequence();
    const steps = new SequenceSteps(sequence);
    await expect(steps.next([])).rejects.toThrow(RangeError);
    steps.dispose();
    steps.dispose(); // twice is harmless
    await expect(steps.next(prompt)).rejects.toThrow(/after dispose/);
    sequence.dispose();
    const without = Object.assign(Object.create(null) as object, { model: (sequence as unknown as { model: unknown }).model });
    expect(() => new SequenceSteps(without as LlamaContextSequence)).toThrow(/node-llama-cpp 3\.22\.1's internals.*lacks _decodeTokens, _resolveSamplerConfig, _context\._ctx\.sampleToken, the sequence's lock/);
  });
});
