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
 * Usage: npm run bench -- stage-runtime [rounds=7] [decodeTokens=48] [--weights f16|bf16|q8_0|q4_k_m] [--threads 1]
 *        [--backend wasm|ggml-cpu|vulkan|cuda|metal] [--inline] [--gpu-runtime <data dir>/gpu-runtime]
 * Prints RESULT llamacpp_tok_s, stage_runtime_tok_s (medians), stage_runtime_vs_llamacpp (median of per-round ratios),
 * stage_runtime_vs_llamacpp_cpu (the same in CPU time per token); with --weights other than f16 (the default, the
 * issue's target) each name ends in `_<weights>`, and with --threads N other than 1 in `_<N>threads` (all engines
 * then use N threads). q4_k_m uses a feed-forward width of 1536 (K-quant rows are 256 long).
 * With --backend vulkan|cuda|metal the span runs on that ggml GPU backend (the build `tessera gpu setup` installed
 * under --gpu-runtime, or node-llama-cpp's package beside it) and llama.cpp runs that same GPU build with every layer
 * offloaded, so both use the same GPU; the WebAssembly runtime is left out. The run prints RESULT
 * gpu_span_vs_llamacpp_<backend> (median per-round tok/s ratio), gpu_span_tok_s_<backend>, llamacpp_tok_s_<backend>
 * and gpu_span_max_rel_err_<backend>: the GPU span's logits at every prompt position against the same span on ggml's
 * CPU backend (largest |diff| over largest |logit|). A backend that cannot run fails the bench with the reason.
 * With --backend ggml-cpu a third engine runs in the same lockstep: the span on ggml's CPU backend (stage/ggml/), and
 * the run also prints RESULT stage_runtime_ggml_tok_s, stage_runtime_ggml_vs_llamacpp and
 * stage_runtime_ggml_vs_llamacpp_cpu (same suffixes). That span computes in its worker thread, as the daemon runs it
 * (stage/ggml/ggml-worker-span.ts): its time per token includes the hand-off to the worker and back, printed per round
 * as "ms/token hand-off" (its wall time per token minus the time the worker spent computing). With --inline a
 * fourth engine runs the same ggml span on the bench's own thread (GgmlStage, no worker), in the same lockstep (its
 * rounds print "ms/token host": its wall time per token outside ggml_backend_graph_compute: setting inputs, building
 * graphs (stage/ggml/design.md, "A step's graph is reused"), reading the logits and the bench's argmax), and the
 * run prints RESULT stage_runtime_ggml_inline_vs_llamacpp and stage_runtime_ggml_worker_vs_inline (median per-round
 * ratio of the worker's tok/s to the in-thread span's): what the worker costs, measured side by side. With --threads N > 1 each engine's idle threads keep polling for
 * a while after its token (ggml's thread pool, llama.cpp's, the WebAssembly runtime's workers), so on a machine with
 * fewer than about 3N free cores the three engines slow each other down and the figures measure that contention
 * (2 vCPUs, --threads 2: llama.cpp and ggml at 75-460 ms CPU/token instead of ~5); compare them at one thread there.
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama } from "node-llama-cpp";
import { makeTinyModel, relativeError, type TinyWeightType } from "@tessera/testkit";
import { GPU_STAGE_BACKENDS, loadGgmlStage, loadLlama, loadSpan, loadStage, readModelConfig, argmax, resolveStageRuntime, setStageThreads, type GpuStageBackend } from "@tessera/node";
import { fmt, percentile } from "./lib-stats.js";

const PROMPT = "The quick brown fox jumps over the lazy dog and";

interface Timing {
  tokens: number[];
  wallSeconds: number;
  cpuSeconds: number;
  /** For the worker span: wall time inside the worker (the rest of wallSeconds is the hand-off to it and back). */
  workerSeconds?: number;
  /** For the in-thread ggml span: wall time in graph compute (the rest of wallSeconds is host work: inputs, graphs). */
  graphSeconds?: number;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

function median(values: number[]): number {
  return percentile(values, 50);
}

const WEIGHTS: TinyWeightType[] = ["f16", "bf16", "q8_0", "q4_k_m"];

export async function main(args: string[] = []): Promise<void> {
  const option = (name: string): string | undefined => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const weights = (option("weights") ?? "f16") as TinyWeightType;
  const threads = Number(option("threads") ?? 1);
  const backend = option("backend") ?? "wasm";
  const gpuRuntimeDir = option("gpu-runtime");
  const gpu = (GPU_STAGE_BACKENDS as readonly string[]).includes(backend) ? (backend as GpuStageBackend) : undefined;
  const inline = args.includes("--inline");
  const positional = args.filter((a, i) => !a.startsWith("--") && (!args[i - 1]?.startsWith("--") || args[i - 1] === "--inline"));
  const backends = ["wasm", "ggml-cpu", ...GPU_STAGE_BACKENDS];
  const rounds = Number(positional[0] ?? 7);
  const decodeTokens = Number(positional[1] ?? 48);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(decodeTokens) || decodeTokens < 1 || !WEIGHTS.includes(weights) || !Number.isInteger(threads) || threads < 1 || !backends.includes(backend)) {
    throw new Error(`usage: stage-runtime [rounds>=1] [decodeTokens>=1] [--weights ${WEIGHTS.join("|")}] [--threads n>=1] [--backend ${backends.join("|")}] [--gpu-runtime dir], got ${args.join(" ")}`);
  }
  const suffix = (weights === "f16" ? "" : `_${weights}`) + (threads === 1 ? "" : `_${threads}threads`) + (gpu ? `_${gpu}` : "");
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

  if (gpu) {
    // Fail before loading anything else when the backend cannot run here, with the reason.
    const choice = resolveStageRuntime(gpu, undefined, { gpuRuntimeDir });
    if (!choice.runtime) throw new Error(choice.detail);
  }
  // On a GPU backend, llama.cpp runs node-llama-cpp's build for the same GPU (as the embedded engine loads it).
  const llama = gpu
    ? (await loadLlama({ runtimeDir: gpuRuntimeDir, getLlama: getLlama as Parameters<typeof loadLlama>[0]["getLlama"], log: (_l, m) => console.log(m) })).llama
    : await getLlama({ gpu: false, build: "never" });
  if (gpu && llama.gpu !== gpu) console.log(`llama.cpp: no ${gpu} build loaded (node-llama-cpp runs ${String(llama.gpu)}); its figures are not on the same GPU`);
  const model = await llama.loadModel({ modelPath: info.path, ...(gpu ? { gpuLayers: "max" as const } : {}) });
  const context = await model.createContext({ contextSize: 512, flashAttention: false, threads: threads });
  const prompt = [...model.tokenize(PROMPT, true)] as number[];
  const sequence = context.getSequence();

  const { nLayer } = readModelConfig(info.path);
  /** What the lockstep needs of an engine; the worker span answers promises, the in-thread ones arrays. */
  interface BenchSpan {
    forward(id: string, input: Int32Array | number[], positions: Int32Array | number[]): Float32Array | Promise<Float32Array>;
    dropRequest(id: string): boolean;
    close?(): unknown;
    /** The worker span's own compute time so far (ms): the rest of its tokens' wall time is the thread hand-off. */
    computeMs?: number;
    /** The in-thread ggml span's time in ggml_backend_graph_compute so far (ms): the rest is the host's. */
    graphComputeMs?: number;
  }
  const stages: Array<{ name: string; span: BenchSpan }> = gpu ? [] : [{ name: "stage", span: loadStage({ path: info.path, start: 0, end: nLayer }) }];
  let maxRelErr: number | undefined;
  if (gpu) {
    const onGpu = await loadSpan({ path: info.path, start: 0, end: nLayer, backend: gpu, threads, gpuRuntimeDir });
    console.log(`${gpu} span: ${onGpu.detail}`);
    stages.push({ name: "gpu", span: onGpu.span });
    // Agreement with the CPU: the same span on ggml's CPU backend, logits at every prompt position.
    const cpu = loadGgmlStage({ path: info.path, start: 0, end: nLayer, threads });
    const positions = prompt.map((_, i) => i);
    const want = cpu.forward("agree", prompt, positions, { logits: "all" }).slice();
    maxRelErr = relativeError(await onGpu.span.forward("agree", prompt, positions, { logits: "all" }), want);
    onGpu.span.dropRequest("agree");
    cpu.close();
  }
  if (backend === "ggml-cpu") {
    const ggml = await loadSpan({ path: info.path, start: 0, end: nLayer, backend: "ggml-cpu", threads });
    console.log(`ggml span: ${ggml.detail}`);
    stages.push({ name: "ggml", span: ggml.span });
    if (inline) stages.push({ name: "ggml-inline", span: loadGgmlStage({ path: info.path, start: 0, end: nLayer, threads }) });
  }

  /**
   * One round: a fresh request on each engine, prompt evaluated untimed, then `decodeTokens` tokens decoded in
   * lockstep, one token of each engine in turn (the order rotating per token), each timed on its own. All engines
   * thus see the same moments of the shared machine's load; each one's time is the sum of its own tokens.
   * (node-llama-cpp's evaluate() is a lazy async generator: it decodes the next token only when asked.)
   */
  let requestNo = 0;
  async function round(): Promise<{ ref: Timing; mine: Timing[] }> {
    await sequence.clearHistory();
    const id = `bench-${requestNo++}`;
    const ref: Timing = { tokens: [], wallSeconds: 0, cpuSeconds: 0 };
    const mine: Timing[] = stages.map(() => ({ tokens: [], wallSeconds: 0, cpuSeconds: 0 }));
    const it = sequence.evaluate(prompt as unknown as Parameters<typeof sequence.evaluate>[0], { temperature: 0 })[Symbol.asyncIterator]();
    const one = new Int32Array(1);
    const pos = new Int32Array(1);
    try {
      ref.tokens.push((await it.next()).value as number);
      for (const [k, s] of stages.entries()) mine[k].tokens.push(argmax(await s.span.forward(id, prompt, prompt.map((_, i) => i))));
      const llamaStep = async (): Promise<void> => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const next = await it.next();
        ref.wallSeconds += (performance.now() - t0) / 1000;
        ref.cpuSeconds += cpuSeconds(c0);
        ref.tokens.push(next.value as number);
      };
      const stageStep = async (k: number, i: number): Promise<void> => {
        const m = mine[k];
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        one[0] = m.tokens[m.tokens.length - 1];
        pos[0] = prompt.length + i;
        const inWorker = stages[k].span.computeMs;
        const inGraph = stages[k].span.graphComputeMs;
        const token = argmax(await stages[k].span.forward(id, one, pos));
        m.wallSeconds += (performance.now() - t0) / 1000;
        if (inWorker !== undefined) m.workerSeconds = (m.workerSeconds ?? 0) + (stages[k].span.computeMs! - inWorker) / 1000;
        if (inGraph !== undefined) m.graphSeconds = (m.graphSeconds ?? 0) + (stages[k].span.graphComputeMs! - inGraph) / 1000;
        m.cpuSeconds += cpuSeconds(c0);
        m.tokens.push(token);
      };
      const engines = stages.length + 1;
      for (let i = 0; i < decodeTokens; i++) {
        for (let j = 0; j < engines; j++) {
          const e = (i + j) % engines;
          if (e === 0) await llamaStep();
          else await stageStep(e - 1, i);
        }
      }
    } finally {
      await it.return?.(undefined);
      for (const s of stages) s.span.dropRequest(id);
    }
    return { ref, mine };
  }

  await round();
  const llamaRates: number[] = [];
  const rates: number[][] = stages.map(() => []);
  const ratios: number[][] = stages.map(() => []);
  const cpuRatios: number[][] = stages.map(() => []);
  const same: number[] = stages.map(() => -1);
  for (let r = 0; r < rounds; r++) {
    const { ref, mine } = await round();
    const llamaRate = decodeTokens / ref.wallSeconds;
    llamaRates.push(llamaRate);
    let line = `round ${r + 1}: llama.cpp ${fmt(llamaRate, 1)} tok/s (${fmt((ref.cpuSeconds / decodeTokens) * 1000, 2)} ms CPU/token)`;
    stages.forEach((s, k) => {
      const m = mine[k];
      let agree = 0;
      while (agree < m.tokens.length && m.tokens[agree] === ref.tokens[agree]) agree++;
      same[k] = same[k] < 0 ? agree : Math.min(same[k], agree);
      const rate = decodeTokens / m.wallSeconds;
      rates[k].push(rate);
      ratios[k].push(rate / llamaRate);
      cpuRatios[k].push(ref.cpuSeconds / m.cpuSeconds);
      const handOff = m.workerSeconds === undefined ? "" : `, ${fmt(((m.wallSeconds - m.workerSeconds) / decodeTokens) * 1000, 2)} ms/token hand-off`;
      const host = m.graphSeconds === undefined ? "" : `, ${fmt(((m.wallSeconds - m.graphSeconds) / decodeTokens) * 1000, 3)} ms/token host`;
      line += `, ${s.name} ${fmt(rate, 1)} tok/s (${fmt((m.cpuSeconds / decodeTokens) * 1000, 2)} ms CPU/token${handOff}${host}), ratio ${fmt(rate / llamaRate)}`;
    });
    console.log(line);
  }
  for (const s of stages) await s.span.close?.();
  await context.dispose();
  await model.dispose();
  await llama.dispose();

  console.log(`RESULT llamacpp_tok_s${suffix} ${fmt(median(llamaRates), 2)}`);
  stages.forEach((s, k) => {
    const sorted = [...ratios[k]].sort((a, b) => a - b);
    // "stage" is the WebAssembly runtime (the names the earlier runs reported); "ggml" the ggml CPU span.
    const prefix = s.name === "stage" ? "stage_runtime" : s.name === "ggml" ? "stage_runtime_ggml" : s.name === "gpu" ? "gpu_span" : "stage_runtime_ggml_inline";
    console.log(`${s.name}: same greedy tokens as llama.cpp: ${same[k]}/${decodeTokens + 1} (worst round)`);
    console.log(`${s.name}: ratio per round (sorted): ${sorted.map((v) => fmt(v)).join(" ")}; min ${fmt(sorted[0])}, median ${fmt(median(ratios[k]))}, max ${fmt(sorted[sorted.length - 1])}`);
    console.log(`${s.name}: CPU-time ratio (llama.cpp CPU/token over ${s.name} CPU/token): median ${fmt(median(cpuRatios[k]))}`);
    console.log(`RESULT ${prefix}_tok_s${suffix} ${fmt(median(rates[k]), 2)}`);
    console.log(`RESULT ${prefix}_vs_llamacpp${suffix} ${fmt(median(ratios[k]))}`);
    // The same comparison in CPU time per token: immune to descheduling and to node-llama-cpp's thread hand-off.
    if (s.name !== "gpu") console.log(`RESULT ${prefix}_vs_llamacpp_cpu${suffix} ${fmt(median(cpuRatios[k]))}`);
  });
  if (maxRelErr !== undefined) console.log(`RESULT gpu_span_max_rel_err${suffix} ${maxRelErr.toExponential(2)}`);
  const worker = stages.findIndex((s) => s.name === "ggml");
  const inThread = stages.findIndex((s) => s.name === "ggml-inline");
  if (worker >= 0 && inThread >= 0) {
    const perRound = rates[worker].map((r, i) => r / rates[inThread][i]);
    const sorted = [...perRound].sort((a, b) => a - b);
    console.log(`ggml worker over in-thread tok/s per round (sorted): ${sorted.map((v) => fmt(v)).join(" ")}`);
    console.log(`RESULT stage_runtime_ggml_worker_vs_inline${suffix} ${fmt(median(perRound))}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
