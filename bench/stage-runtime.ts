/**
 * stage-runtime: the one-stage TypeScript runtime vs llama.cpp (node-llama-cpp, CPU, flash attention off) on the same
 * ~56M-parameter F16 GGUF file, same thread count (1), decoding speed in tokens/s.
 *
 * The machine this runs on is shared and noisy, so the two engines are measured side by side: both stay loaded, and
 * each round runs one llama.cpp decode and one stage-runtime decode back to back (order alternating per round), after
 * one warm-up round each (JIT and WebAssembly tier-up). The ratio is taken per round from that adjacent pair, and the
 * RESULT is the median over rounds; every round's figures and the spread are printed. CPU time per token (process
 * CPU, both engines run in this process) is printed too: it is what each engine costs when it is not descheduled.
 *
 * Usage: npm run bench -- stage-runtime [rounds=7] [decodeTokens=48]
 * Prints RESULT llamacpp_tok_s, stage_runtime_tok_s (medians), stage_runtime_vs_llamacpp (median of per-round ratios).
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama } from "node-llama-cpp";
import { makeTinyModel } from "@tessera/testkit";
import { loadStage, readModelConfig, argmax, type Stage } from "@tessera/node";
import { fmt, percentile } from "./lib-stats.js";

const PROMPT = "The quick brown fox jumps over the lazy dog and";
const THREADS = 1;

interface Timing {
  tokens: number[];
  wallSeconds: number;
  cpuSeconds: number;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

function median(values: number[]): number {
  return percentile(values, 50);
}

export async function main(args: string[] = []): Promise<void> {
  const rounds = Number(args[0] ?? 7);
  const decodeTokens = Number(args[1] ?? 48);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(decodeTokens) || decodeTokens < 1) {
    throw new Error(`usage: stage-runtime [rounds>=1] [decodeTokens>=1], got ${args.join(" ")}`);
  }
  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });
  const info = await makeTinyModel({ path: join(dir, "stage-runtime-50m-f16.gguf"), preset: "50m", weightType: "f16", seed: 5 });
  console.log(`model: ${info.parameterCount} parameters, F16, ${(info.sizeBytes / 2 ** 20).toFixed(1)} MiB, threads ${THREADS}`);
  console.log(`rounds: ${rounds} (+1 warm-up), ${decodeTokens} decoded tokens each, timed from the first generated token`);

  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath: info.path });
  const context = await model.createContext({ contextSize: 512, flashAttention: false, threads: THREADS });
  const prompt = [...model.tokenize(PROMPT, true)] as number[];
  const sequence = context.getSequence();

  const { nLayer } = readModelConfig(info.path);
  const stage = loadStage({ path: info.path, start: 0, end: nLayer });

  // Decode only: the clock starts when the first token (from the prompt) is out, and stops after decodeTokens more.
  async function runLlama(): Promise<Timing> {
    await sequence.clearHistory();
    const tokens: number[] = [];
    let t0 = 0;
    let c0 = process.cpuUsage();
    for await (const token of sequence.evaluate(prompt as unknown as Parameters<typeof sequence.evaluate>[0], { temperature: 0 })) {
      if (tokens.length === 0) {
        t0 = performance.now();
        c0 = process.cpuUsage();
      }
      tokens.push(token as number);
      if (tokens.length > decodeTokens) break;
    }
    return { tokens, wallSeconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSeconds(c0) };
  }

  let requestNo = 0;
  function runStage(s: Stage): Timing {
    const id = `bench-${requestNo++}`;
    const one = new Int32Array(1);
    const pos = new Int32Array(1);
    try {
      const tokens = [argmax(s.forward(id, prompt, prompt.map((_, i) => i)))];
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (let i = 0; i < decodeTokens; i++) {
        one[0] = tokens[tokens.length - 1];
        pos[0] = prompt.length + i;
        tokens.push(argmax(s.forward(id, one, pos)));
      }
      return { tokens, wallSeconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSeconds(c0) };
    } finally {
      s.dropRequest(id);
    }
  }

  await runLlama();
  runStage(stage);
  const llamaRates: number[] = [];
  const stageRates: number[] = [];
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  let same = -1;
  for (let r = 0; r < rounds; r++) {
    let ref: Timing;
    let mine: Timing;
    if (r % 2 === 0) {
      ref = await runLlama();
      mine = runStage(stage);
    } else {
      mine = runStage(stage);
      ref = await runLlama();
    }
    let agree = 0;
    while (agree < mine.tokens.length && mine.tokens[agree] === ref.tokens[agree]) agree++;
    same = same < 0 ? agree : Math.min(same, agree);
    const llamaRate = decodeTokens / ref.wallSeconds;
    const stageRate = decodeTokens / mine.wallSeconds;
    llamaRates.push(llamaRate);
    stageRates.push(stageRate);
    ratios.push(stageRate / llamaRate);
    cpuRatios.push(ref.cpuSeconds / mine.cpuSeconds);
    console.log(
      `round ${r + 1}: llama.cpp ${fmt(llamaRate, 1)} tok/s (${fmt((ref.cpuSeconds / decodeTokens) * 1000, 2)} ms CPU/token), ` +
        `stage ${fmt(stageRate, 1)} tok/s (${fmt((mine.cpuSeconds / decodeTokens) * 1000, 2)} ms CPU/token), ratio ${fmt(stageRate / llamaRate)}`,
    );
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();

  const sorted = [...ratios].sort((a, b) => a - b);
  console.log(`same greedy tokens: ${same}/${decodeTokens + 1} (worst round)`);
  console.log(`ratio per round (sorted): ${sorted.map((v) => fmt(v)).join(" ")}; min ${fmt(sorted[0])}, median ${fmt(median(ratios))}, max ${fmt(sorted[sorted.length - 1])}`);
  console.log(`CPU-time ratio (llama.cpp CPU/token over stage CPU/token): median ${fmt(median(cpuRatios))}`);
  console.log(`RESULT llamacpp_tok_s ${fmt(median(llamaRates), 2)}`);
  console.log(`RESULT stage_runtime_tok_s ${fmt(median(stageRates), 2)}`);
  console.log(`RESULT stage_runtime_vs_llamacpp ${fmt(median(ratios))}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
