/**
 * logprobs: what log-probabilities cost on the embedded engine. One greedy answer, generated three ways in alternating
 * rounds on the testkit's ~56M-parameter 50m F16 file (CPU, 1 thread):
 * - plain: node-llama-cpp's own `evaluate` on the same prompt tokens, no Tessera code around it (the baseline);
 * - for checks: the backend unasked, whose greedy answers carry each token's log-probability for the trust checks
 *   (greedy-logprobs.ts: the greedy token and log Z from one native sampler for the whole answer, sequence-steps.ts);
 * - asked: the backend with `logprobs`, `top_logprobs: 5` (scored-generation.ts: the raw top-40 logits and log Z, the
 *   draw in JavaScript, each token's text and alternatives decoded).
 *
 *   npm run bench -- logprobs
 * On two sizes (50m, and about 270M parameters). Prints tokens/s of each and RESULT logprobs_check_vs_plain_time_<size>,
 * RESULT logprobs_vs_plain_time_<size> (time per answer over the plain one's). A tiny model is the worst case: its
 * forward pass is short, so per-token overheads weigh most.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StreamPart } from "@tessera/protocol";
import { createEmbeddedBackend } from "@tessera/node/embedded";
import { makeTinyModel } from "@tessera/testkit";
import { LlamaLogLevel, getLlama } from "node-llama-cpp";
import { createPromptFormatter } from "@tessera/node/embedded";
import { fmt, percentile } from "./lib-stats.js";

const MAX_TOKENS = 48;
const ROUNDS = 7;

async function timed(parts: AsyncIterable<StreamPart>): Promise<{ ms: number; tokens: number }> {
  const t0 = performance.now();
  let tokens = 0;
  for await (const p of parts) if (p.type === "usage") tokens = p.completion_tokens;
  return { ms: performance.now() - t0, tokens };
}

/** The testkit's 50m file, and one about five times its compute, to see how the per-token overheads shrink. */
const SIZES = [
  { name: "50m", dims: { preset: "50m" as const, feedForwardLength: 1536 } },
  { name: "270m", dims: { preset: "50m" as const, embeddingLength: 1024, blockCount: 16, headCount: 16, headCountKv: 8, feedForwardLength: 2816 } },
];

export async function main(): Promise<void> {
  for (const size of SIZES) await measure(size.name, size.dims);
}

async function measure(name: string, dims: (typeof SIZES)[number]["dims"]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tessera-bench-logprobs-"));
  try {
    const path = (await makeTinyModel({ path: join(dir, `bench-${name}.gguf`), ...dims, weightType: "f16", seed: 1 })).path;
    const backend = createEmbeddedBackend({ modelPath: path, modelId: "bench", threads: 1, maxSequences: 1 });
    await backend.load();
    const messages = [{ role: "user" as const, content: "Tell me a long story about a fox and a crow." }];
    const request = (logprobs: boolean) => ({
      model: "bench",
      messages,
      sampling: { max_tokens: MAX_TOKENS, temperature: 0, top_p: 1, ...(logprobs ? { logprobs: true, top_logprobs: 5 } : {}) },
    });
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: path });
    const context = await model.createContext({ contextSize: 1024, sequences: 1, threads: 1 });
    const sequence = context.getSequence();
    const prompt = createPromptFormatter(model).promptTokens(messages);
    const raw = async (): Promise<{ ms: number; tokens: number }> => {
      const t0 = performance.now();
      let tokens = 0;
      for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        if (model.isEogToken(token) || ++tokens >= MAX_TOKENS) break;
      }
      const ms = performance.now() - t0;
      await sequence.clearHistory();
      return { ms, tokens };
    };
    await raw();
    await timed(backend.doStream(request(false)));
    await timed(backend.doStream(request(true)));
    const plain: number[] = [];
    const checks: number[] = [];
    const scored: number[] = [];
    let tokens = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const a = await raw();
      const c = await timed(backend.doStream(request(false)));
      const b = await timed(backend.doStream(request(true)));
      if (a.tokens !== b.tokens || c.tokens !== b.tokens) throw new Error(`the paths answered ${a.tokens}, ${c.tokens} and ${b.tokens} tokens`);
      tokens = a.tokens;
      plain.push(a.ms);
      checks.push(c.ms);
      scored.push(b.ms);
    }
    await backend.close();
    await context.dispose();
    await model.dispose();
    await llama.dispose();
    const p = percentile(plain, 50);
    const c = percentile(checks, 50);
    const s = percentile(scored, 50);
    console.log(`${name} F16: ${tokens} tokens greedy, median of ${ROUNDS} rounds`);
    console.log(`  plain (node-llama-cpp evaluate):        ${fmt(p, 1)} ms (${fmt((tokens * 1000) / p, 1)} tokens/s)`);
    console.log(`  for checks (backend, chosen logprob):   ${fmt(c, 1)} ms (${fmt((tokens * 1000) / c, 1)} tokens/s)`);
    console.log(`  asked, top 5 (backend, scored path):    ${fmt(s, 1)} ms (${fmt((tokens * 1000) / s, 1)} tokens/s)`);
    console.log(`RESULT logprobs_check_vs_plain_time_${name} ${fmt(c / p, 2)}`);
    console.log(`RESULT logprobs_vs_plain_time_${name} ${fmt(s / p, 2)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
