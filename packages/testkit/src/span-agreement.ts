import type { Llama, Token } from "node-llama-cpp";
import { argmax } from "@tessera/node";
import { relativeError } from "./logits-error.js";

/** What the agreement check needs of a span: the worker span answers promises, the in-thread one arrays. */
export interface ComparedSpan {
  forward(id: string, tokens: number[], positions: number[], options?: { logits?: "all" }): Float32Array | Promise<Float32Array>;
  dropRequest(id: string): boolean;
}

export interface SpanAgreement {
  /** The span's logits at every prompt position (`{ logits: "all" }`). */
  promptLogits: Float32Array;
  /** The span's logits at every prompt position against the reference span's (`relativeError`). */
  batchVsReference: number;
  /** The largest over the decode steps of the same, both fed the reference's greedy tokens. */
  stepsVsReference: number;
  /** The prompt fed one token at a time against the batch, on the span checked (a failover replays a batch). */
  oneByOneVsBatch: number;
  /** The span's own greedy tokens after the prompt, each fed back. */
  greedy: number[];
  /** The reference span's own greedy tokens. */
  referenceGreedy: number[];
}

/** The agreement checks' prompt for a file made with `seed`: BOS, then 12 byte-vocabulary tokens. */
export function agreementPrompt(seed: number): number[] {
  return [1, ...Array.from({ length: 12 }, (_, i) => 3 + ((i * 37 + seed) % 250))];
}

/**
 * A span (a GPU one, say) against a reference span of the same layers (ggml's CPU backend, say) on one prompt, as
 * `npm run bench -- span-agreement` and the Vulkan device test measure it. Leaves no request open on either span.
 */
export async function measureSpanAgreement(span: ComparedSpan, reference: ComparedSpan, prompt: number[], decoded: number): Promise<SpanAgreement> {
  const positions = prompt.map((_, i) => i);
  const want = (await reference.forward("agreement", prompt, positions, { logits: "all" })).slice();
  const batch = (await span.forward("agreement", prompt, positions, { logits: "all" })).slice();
  const vocab = batch.length / prompt.length;
  const lastRow = (all: Float32Array) => all.subarray(all.length - vocab);
  const batchVsReference = relativeError(batch, want);
  let oneByOneVsBatch = 0;
  for (let i = 0; i < prompt.length; i++) {
    oneByOneVsBatch = Math.max(oneByOneVsBatch, relativeError(await span.forward("one-by-one", [prompt[i]!], [i]), batch.subarray(i * vocab, (i + 1) * vocab)));
  }
  span.dropRequest("one-by-one");
  let stepsVsReference = 0;
  const referenceGreedy: number[] = [];
  let wantRow = lastRow(want);
  for (let t = 0; t < decoded; t++) {
    const token = argmax(wantRow);
    referenceGreedy.push(token);
    wantRow = (await reference.forward("agreement", [token], [prompt.length + t])).slice();
    stepsVsReference = Math.max(stepsVsReference, relativeError(await span.forward("agreement", [token], [prompt.length + t]), wantRow));
  }
  reference.dropRequest("agreement");
  span.dropRequest("agreement");
  // The span's own greedy run, each step fed its own token, as an engine generates.
  const greedy: number[] = [];
  let row = (await span.forward("greedy", prompt, positions)).slice();
  for (let t = 0; t < decoded; t++) {
    greedy.push(argmax(row));
    row = (await span.forward("greedy", [greedy[t]!], [prompt.length + t])).slice();
  }
  span.dropRequest("greedy");
  return { promptLogits: batch, batchVsReference, stepsVsReference, oneByOneVsBatch, greedy, referenceGreedy };
}

/** llama.cpp's greedy tokens after `prompt` on `llama` (every layer on its GPU with `offload`), one thread. */
export async function llamaGreedyTokens(llama: Llama, modelPath: string, prompt: number[], count: number, offload: boolean): Promise<number[]> {
  const model = await llama.loadModel({ modelPath, ...(offload ? { gpuLayers: "max" as const } : {}) });
  try {
    const context = await model.createContext({ contextSize: 256, threads: 1, flashAttention: false });
    const tokens: number[] = [];
    try {
      for await (const token of context.getSequence().evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
        tokens.push(token);
        if (tokens.length === count) break;
      }
    } finally {
      await context.dispose();
    }
    return tokens;
  } finally {
    await model.dispose();
  }
}

/**
 * llama.cpp's logits at every position of `prompt` on `llama` (every layer on its GPU with `offload`), one thread:
 * `prompt.length` rows of the vocabulary, by token id, as a span's `{ logits: "all" }` lays them out.
 */
export async function llamaPromptLogits(llama: Llama, modelPath: string, prompt: number[], offload: boolean): Promise<Float32Array> {
  const model = await llama.loadModel({ modelPath, ...(offload ? { gpuLayers: "max" as const } : {}) });
  try {
    const context = await model.createContext({ contextSize: 256, threads: 1, flashAttention: false });
    try {
      const sequence = context.getSequence();
      const items = prompt.map((token) => [token, { generateNext: { logits: true } }] as [Token, { generateNext: { logits: true } }]);
      const rows = await sequence.controlledEvaluate(items);
      const vocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
      const all = new Float32Array(prompt.length * vocab);
      rows.forEach((row, i) => {
        for (const [token, value] of row!.next.logits!) all[i * vocab + token] = value;
      });
      return all;
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** How many tokens two runs share from the start. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
