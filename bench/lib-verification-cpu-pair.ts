/**
 * The calibration's cross-CPU honest pair (trust design.md, "Calibration: method"): a llama-server whose ggml CPU
 * backend is node-llama-cpp's prebuilt library of ANOTHER x86 variant than the one this CPU loads (default haswell:
 * an AVX2-only CPU's kernels, whose dot products sum in other orders than AVX512 ones), serving the same file, as a
 * verification engine. Resolves `{ skip }` with the reason where no llama-server can be built or the variant cannot
 * run here. This CPU's own variant is allowed, as a control (named so): the same kernels on both sides.
 *
 * The server runs as the embedded engine does (flash attention off, 1 thread): with llama-server's default
 * `--flash-attn auto` it takes the flash-attention kernels, a difference of its own. Measured with this CPU's own
 * variant (the control, 40 jobs of 32 tokens): embedded → llama-server |Δ logprob| p50 1.0e-3, max 0.039 with flash
 * attention on; off, p50 < 1e-5, p99 2.6e-4, max 0.0097, no top-1 mismatch. So with it off, embedded → llama-server
 * differs by the CPU kernels (and little else); llama-server → embedded adds the embedded engine's batched scoring
 * against token-by-token decoding, as the other pairs have it.
 */
import { readFile } from "node:fs/promises";
import { buildLlamaServer, llamaServerWithCpuVariant, parseCpuinfoFlags, pickX86CpuVariant, startLlamaServer } from "@tessera/testkit";
import { createLlamaServerEngine, type VerificationEngine } from "@tessera/node/verification";

export interface OtherCpuEngine {
  engine: VerificationEngine;
  /** This CPU's own variant (what the embedded engine runs) and the one the server loads. */
  thisCpu: string;
  otherCpu: string;
  close(): Promise<void>;
}

export async function startOtherCpuEngine(variant: string, model: { path: string; eosId: number; vocabSize: number }): Promise<OtherCpuEngine | { skip: string }> {
  if (process.platform !== "linux" || process.arch !== "x64") return { skip: `ggml's x86 CPU variants need linux-x64, this is ${process.platform}-${process.arch}` };
  const thisCpu = pickX86CpuVariant(parseCpuinfoFlags(await readFile("/proc/cpuinfo", "utf8"))).name;
  const control = thisCpu === variant;
  if (control) console.log(`\n*** ${variant} is this CPU's own ggml variant: the llama-server pair is a control (same kernels), not a cross-CPU pair ***\n`);
  const build = await buildLlamaServer({ mandatory: false });
  if (build.binaryPath === undefined) return { skip: build.reason };
  let binary;
  try {
    binary = await llamaServerWithCpuVariant(build, variant);
  } catch (err) {
    return { skip: (err as Error).message };
  }
  const server = await startLlamaServer({ binaryPath: binary.binaryPath, modelPath: model.path, threads: 1, contextSize: 512, args: ["--flash-attn", "off"] });
  // ggml logs the CPU library it loaded; the folder holds only the asked-for one, but say so from the horse's mouth.
  const loaded = server.process.logText.split("\n").find((l) => /libggml-cpu/.test(l));
  console.log(`cross-CPU pair: embedded engine on this CPU's ${thisCpu} kernels, llama-server ${binary.tag} on ${variant}'s (${loaded?.trim() ?? binary.binaryPath})`);
  const engine = createLlamaServerEngine({ baseURL: server.baseURL, eosToken: model.eosId, vocabSize: model.vocabSize, kind: `llama-server ${variant}${control ? " (control)" : ""}` });
  return {
    engine,
    thisCpu,
    otherCpu: variant,
    async close() {
      await engine.close();
      await server.stop();
    },
  };
}
