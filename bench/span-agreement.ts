/**
 * span-agreement: how closely a span on a ggml GPU backend computes what ggml's CPU backend and llama.cpp's own build
 * for that GPU compute, on small generated models of each weight type and several seeds. The data the Vulkan device
 * test's tolerances come from (packages/node/src/stage/ggml/ggml-vulkan-device.test.ts, docs/sharding.md); on a real
 * GPU the same figures say how that GPU's kernels round.
 *
 * For each file (3 layers, a 13-token prompt, 64 decoded tokens):
 * - `batch vs cpu`: the span's logits at every prompt position against the same span on ggml's CPU backend;
 * - `steps vs cpu`: the largest over 64 decode steps of the same, both fed the CPU span's greedy tokens;
 * - `one-by-one vs batch`: the prompt fed one token at a time against the batch, on the GPU span (a failover's replay
 *   is a batch; the tokens before it were single steps);
 * - greedy tokens in common from the start (of 64): the GPU span against llama.cpp on the same GPU, llama.cpp on the
 *   GPU against llama.cpp on the CPU, and ggml's CPU span against llama.cpp on the CPU.
 * Errors are the largest |difference| over the largest |logit|. A machine without a GPU can run it on Mesa's software
 * Vulkan device: `GGML_VK_VISIBLE_DEVICES=0 npm run bench -- span-agreement --backend vulkan` (`apt-get install
 * mesa-vulkan-drivers`; ggml skips CPU devices unless named).
 *
 *   npm run bench -- span-agreement [--backend vulkan|cuda|metal] [--gpu-runtime DIR] [--seeds 7,11,13,17,19]
 *
 * Prints, per weight type w and backend b: RESULT span_agreement_cpu_rel_err_<w>_<b> (the larger of batch and steps,
 * over seeds), span_agreement_batch_rel_err_<w>_<b> (one-by-one vs batch, over seeds), and
 * span_agreement_same_tokens_<b>: the fewest greedy tokens the GPU span shared with llama.cpp on the same GPU (of 64).
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { agreementPrompt, commonPrefix, llamaGreedyTokens, llamaPromptLogits, makeTinyModel, measureSpanAgreement, relativeError, type TinyWeightType } from "@tessera/testkit";
import { GPU_STAGE_BACKENDS, loadGgmlStage, loadLlama, loadSpan, resolveStageRuntime, type GpuStageBackend } from "@tessera/node";

const WEIGHTS = ["f16", "q8_0", "q4_k_m"] as const;
const DECODED = 64;
const LAYERS = 3;

export async function main(args: string[] = []): Promise<void> {
  const option = (name: string): string | undefined => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const backend = option("backend") ?? "vulkan";
  const gpuRuntimeDir = option("gpu-runtime");
  const seeds = (option("seeds") ?? "7,11,13,17,19").split(",").map(Number);
  if (!(GPU_STAGE_BACKENDS as readonly string[]).includes(backend) || seeds.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new Error(`usage: span-agreement [--backend ${GPU_STAGE_BACKENDS.join("|")}] [--gpu-runtime dir] [--seeds n,n,…], got ${args.join(" ")}`);
  }
  const gpu = backend as GpuStageBackend;
  const choice = resolveStageRuntime(gpu, undefined, { gpuRuntimeDir });
  if (!choice.runtime) throw new Error(choice.detail);
  console.log(`${gpu}: ${choice.detail}`);
  const onGpu = (await loadLlama({ runtimeDir: gpuRuntimeDir, getLlama: getLlama as Parameters<typeof loadLlama>[0]["getLlama"], logLevel: LlamaLogLevel.error })).llama;
  if (onGpu.gpu !== gpu) throw new Error(`llama.cpp: no ${gpu} build loaded (node-llama-cpp runs ${String(onGpu.gpu)}); nothing to compare on the same GPU`);
  const onCpu = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });

  let fewestSame = DECODED;
  for (const weights of WEIGHTS) {
    let cpuErr = 0;
    let batchErr = 0;
    let llamaErr = 0;
    for (const seed of seeds) {
      const wide = weights === "q4_k_m" ? { embeddingLength: 256, feedForwardLength: 512 } : {};
      const { path } = await makeTinyModel({ path: join(dir, `span-agreement-${weights}-${seed}.gguf`), weightType: weights as TinyWeightType, vocab: "bytes", seed, blockCount: LAYERS, ...wide });
      const prompt = agreementPrompt(seed);
      const cpu = loadGgmlStage({ path, start: 0, end: LAYERS });
      const { span } = await loadSpan({ path, start: 0, end: LAYERS, backend: gpu, gpuRuntimeDir });
      try {
        const m = await measureSpanAgreement(span, cpu, prompt, DECODED);
        const vsLlama = relativeError(m.promptLogits, await llamaPromptLogits(onGpu, path, prompt, true));
        const cpuVsLlama = relativeError(cpu.forward("llama", prompt, prompt.map((_, i) => i), { logits: "all" }), await llamaPromptLogits(onCpu, path, prompt, false));
        cpu.dropRequest("llama");
        llamaErr = Math.max(llamaErr, vsLlama);
        const llamaGpu = await llamaGreedyTokens(onGpu, path, prompt, DECODED, true);
        const llamaCpu = await llamaGreedyTokens(onCpu, path, prompt, DECODED, false);
        const same = commonPrefix(m.greedy, llamaGpu);
        fewestSame = Math.min(fewestSame, same);
        cpuErr = Math.max(cpuErr, m.batchVsReference, m.stepsVsReference);
        batchErr = Math.max(batchErr, m.oneByOneVsBatch);
        console.log(
          `${weights} seed ${seed}: prompt logits vs llama.cpp ${gpu} ${vsLlama.toExponential(2)} (cpu span vs llama.cpp cpu ${cpuVsLlama.toExponential(2)}), batch vs cpu ${m.batchVsReference.toExponential(2)}, steps vs cpu ${m.stepsVsReference.toExponential(2)}, one-by-one vs batch ${m.oneByOneVsBatch.toExponential(2)}; ` +
            `greedy tokens in common of ${DECODED}: ${gpu} span / llama.cpp ${gpu} ${same}, llama.cpp ${gpu} / llama.cpp cpu ${commonPrefix(llamaGpu, llamaCpu)}, ` +
            `cpu span / llama.cpp cpu ${commonPrefix(m.referenceGreedy, llamaCpu)}`,
        );
      } finally {
        cpu.close();
        await span.close();
      }
    }
    console.log(`RESULT span_agreement_cpu_rel_err_${weights}_${gpu} ${cpuErr.toExponential(2)}`);
    console.log(`RESULT span_agreement_batch_rel_err_${weights}_${gpu} ${batchErr.toExponential(2)}`);
    console.log(`RESULT span_agreement_llamacpp_rel_err_${weights}_${gpu} ${llamaErr.toExponential(2)}`);
  }
  console.log(`RESULT span_agreement_same_tokens_${gpu} ${fewestSame}`);
  await onGpu.dispose();
  await onCpu.dispose();
}
