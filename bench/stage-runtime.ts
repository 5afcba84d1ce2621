/**
 * stage-runtime: the one-stage TypeScript runtime vs llama.cpp (node-llama-cpp, CPU) on the same ~50M-parameter F16
 * GGUF file, same thread count (1), decoding speed in tokens/s measured side by side in one run.
 * Prints RESULT stage_runtime_tok_s, RESULT llamacpp_tok_s, RESULT stage_runtime_vs_llamacpp (target >= 0.5).
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama } from "node-llama-cpp";
import { makeTinyModel } from "@tessera/testkit";
import { loadStage, readModelConfig, argmax } from "@tessera/node";

const PROMPT = "The quick brown fox jumps over the lazy dog and";
const DECODE_TOKENS = 48;
const THREADS = 1;

export async function main(): Promise<void> {
  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });
  const info = await makeTinyModel({ path: join(dir, "stage-runtime-50m-f16.gguf"), preset: "50m", weightType: "f16", seed: 5 });
  console.log(`model: ${info.parameterCount} parameters, F16, ${(info.sizeBytes / 2 ** 20).toFixed(1)} MiB, threads ${THREADS}`);

  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath: info.path });
  const context = await model.createContext({ contextSize: 512, flashAttention: false, threads: THREADS });
  const prompt = [...model.tokenize(PROMPT, true)] as number[];
  const sequence = context.getSequence();
  // Warm-up run, then the measured one; time from the first generated token to the last (decode only).
  let refTokens: number[] = [];
  let llamaSeconds = 0;
  for (let round = 0; round < 2; round++) {
    await sequence.clearHistory();
    refTokens = [];
    let t0 = 0;
    for await (const token of sequence.evaluate(prompt as unknown as Parameters<typeof sequence.evaluate>[0], { temperature: 0 })) {
      if (refTokens.length === 0) t0 = performance.now();
      refTokens.push(token as number);
      if (refTokens.length > DECODE_TOKENS) break;
    }
    llamaSeconds = (performance.now() - t0) / 1000;
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();

  const { nLayer } = readModelConfig(info.path);
  const stage = loadStage({ path: info.path, start: 0, end: nLayer });
  let mineTokens: number[] = [];
  let mineSeconds = 0;
  const one = new Int32Array(1);
  const pos = new Int32Array(1);
  for (let round = 0; round < 2; round++) {
    const id = `bench-${round}`;
    mineTokens = [];
    let logits = stage.forward(id, prompt, prompt.map((_, i) => i));
    mineTokens.push(argmax(logits));
    const t0 = performance.now();
    for (let i = 0; i < DECODE_TOKENS; i++) {
      one[0] = mineTokens[mineTokens.length - 1];
      pos[0] = prompt.length + i;
      logits = stage.forward(id, one, pos);
      mineTokens.push(argmax(logits));
    }
    mineSeconds = (performance.now() - t0) / 1000;
    stage.dropRequest(id);
  }

  let same = 0;
  while (same < mineTokens.length && mineTokens[same] === refTokens[same]) same++;
  const llamaRate = DECODE_TOKENS / llamaSeconds;
  const mineRate = DECODE_TOKENS / mineSeconds;
  console.log(`same greedy tokens: ${same}/${mineTokens.length}`);
  console.log(`RESULT llamacpp_tok_s ${llamaRate.toFixed(2)}`);
  console.log(`RESULT stage_runtime_tok_s ${mineRate.toFixed(2)}`);
  console.log(`RESULT stage_runtime_vs_llamacpp ${(mineRate / llamaRate).toFixed(3)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
