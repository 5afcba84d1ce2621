/**
 * stage-runtime: the one-stage TypeScript runtime vs llama.cpp (node-llama-cpp, CPU, flash attention off) on the same
 * ~56M-parameter F16 GGUF file, same thread count (1), decoding speed in tokens/s.
 *
 * The machine this runs on is shared and noisy, so the two engines are measured side by side: both stay loaded, and
 * each round decodes the same prompt on both in lockstep, token by token (see round()), after one warm-up round (JIT
 * and WebAssembly tier-up). The ratio is taken per round, and the RESULT is the median over rounds; every round's
 * figures and the spread are printed. CPU time per token (process CPU while that engine's token is computed) is
 * printed too: it is what each engine costs when it is not descheduled.
 *
 * Usage: npm run bench -- stage-runtime [rounds=7] [decodeTokens=48] [--weights f16|q8_0|q4_k_m] [--threads 1]
 * Prints RESULT llamacpp_tok_s, stage_runtime_tok_s (medians), stage_runtime_vs_llamacpp (median of per-round ratios),
 * stage_runtime_vs_llamacpp_cpu (the same in CPU time per token); with --weights other than f16 (the default, the
 * issue's target) each name ends in `_<weights>`, and with --threads N other than 1 in `_<N>threads` (both engines
 * then use N threads). q4_k_m uses a feed-forward width of 1536 (K-quant rows are 256 long).
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama } from "node-llama-cpp";
import { makeTinyModel, type TinyWeightType } from "@tessera/testkit";
import { loadStage, readModelConfig, argmax, setStageThreads } from "@tessera/node";
import { fmt, percentile } from "./lib-stats.js";

const PROMPT = "The quick brown fox jumps over the lazy dog and";

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

const WEIGHTS: TinyWeightType[] = ["f16", "q8_0", "q4_k_m"];

export async function main(args: string[] = []): Promise<void> {
  const option = (name: string): string | undefined => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const weights = (option("weights") ?? "f16") as TinyWeightType;
  const threads = Number(option("threads") ?? 1);
  const positional = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
  const rounds = Number(positional[0] ?? 7);
  const decodeTokens = Number(positional[1] ?? 48);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(decodeTokens) || decodeTokens < 1 || !WEIGHTS.includes(weights) || !Number.isInteger(threads) || threads < 1) {
    throw new Error(`usage: stage-runtime [rounds>=1] [decodeTokens>=1] [--weights ${WEIGHTS.join("|")}] [--threads n>=1], got ${args.join(" ")}`);
  }
  const suffix = (weights === "f16" ? "" : `_${weights}`) + (threads === 1 ? "" : `_${threads}threads`);
  setStageThreads(threads);
  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });
  const info = await makeTinyModel({
    path: join(dir, `stage-runtime-50m-${weights}.gguf`),
    preset: "50m",
    weightType: weights,
    seed: 5,
    ...(weights === "q4_k_m" ? { feedForwardLength: 1536 } : {}),
  });
  console.log(`model: ${info.parameterCount} parameters, ${weights}, ${(info.sizeBytes / 2 ** 20).toFixed(1)} MiB, threads ${threads}`);
  console.log(`rounds: ${rounds} (+1 warm-up), ${decodeTokens} decoded tokens each, timed from the first generated token`);

  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath: info.path });
  const context = await model.createContext({ contextSize: 512, flashAttention: false, threads: threads });
  const prompt = [...model.tokenize(PROMPT, true)] as number[];
  const sequence = context.getSequence();

  const { nLayer } = readModelConfig(info.path);
  const stage = loadStage({ path: info.path, start: 0, end: nLayer });

  /**
   * One round: a fresh request on each engine, prompt evaluated untimed, then `decodeTokens` tokens decoded in
   * lockstep, one llama.cpp token then one stage token (order alternating per token), each timed on its own. Both
   * engines thus see the same moments of the shared machine's load; each one's time is the sum of its own tokens.
   * (node-llama-cpp's evaluate() is a lazy async generator: it decodes the next token only when asked.)
   */
  let requestNo = 0;
  async function round(): Promise<{ ref: Timing; mine: Timing }> {
    await sequence.clearHistory();
    const id = `bench-${requestNo++}`;
    const ref: Timing = { tokens: [], wallSeconds: 0, cpuSeconds: 0 };
    const mine: Timing = { tokens: [], wallSeconds: 0, cpuSeconds: 0 };
    const it = sequence.evaluate(prompt as unknown as Parameters<typeof sequence.evaluate>[0], { temperature: 0 })[Symbol.asyncIterator]();
    const one = new Int32Array(1);
    const pos = new Int32Array(1);
    try {
      ref.tokens.push((await it.next()).value as number);
      mine.tokens.push(argmax(stage.forward(id, prompt, prompt.map((_, i) => i))));
      const llamaStep = async (): Promise<void> => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const next = await it.next();
        ref.wallSeconds += (performance.now() - t0) / 1000;
        ref.cpuSeconds += cpuSeconds(c0);
        ref.tokens.push(next.value as number);
      };
      const stageStep = (i: number): void => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        one[0] = mine.tokens[mine.tokens.length - 1];
        pos[0] = prompt.length + i;
        const token = argmax(stage.forward(id, one, pos));
        mine.wallSeconds += (performance.now() - t0) / 1000;
        mine.cpuSeconds += cpuSeconds(c0);
        mine.tokens.push(token);
      };
      for (let i = 0; i < decodeTokens; i++) {
        if (i % 2 === 0) {
          await llamaStep();
          stageStep(i);
        } else {
          stageStep(i);
          await llamaStep();
        }
      }
    } finally {
      await it.return?.(undefined);
      stage.dropRequest(id);
    }
    return { ref, mine };
  }

  await round();
  const llamaRates: number[] = [];
  const stageRates: number[] = [];
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  let same = -1;
  for (let r = 0; r < rounds; r++) {
    const { ref, mine } = await round();
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
  console.log(`RESULT llamacpp_tok_s${suffix} ${fmt(median(llamaRates), 2)}`);
  console.log(`RESULT stage_runtime_tok_s${suffix} ${fmt(median(stageRates), 2)}`);
  console.log(`RESULT stage_runtime_vs_llamacpp${suffix} ${fmt(median(ratios))}`);
  // The same comparison in CPU time per token: immune to descheduling and to node-llama-cpp's thread hand-off.
  console.log(`RESULT stage_runtime_vs_llamacpp_cpu${suffix} ${fmt(median(cpuRatios))}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
