/**
 * The calibration's cross-CPU honest pair (trust design.md, "Calibration: method"): a llama-server whose ggml CPU
 * backend is node-llama-cpp's prebuilt library of ANOTHER x86 variant than the one this CPU loads (default haswell:
 * an AVX2-only CPU's kernels, whose dot products sum in other orders than AVX512 ones), serving the same file, as a
 * verification engine. Resolves `{ skip }` with the reason where no llama-server can be built, the variant cannot run
 * here, or it is this CPU's own variant (then the pair would not cross CPUs).
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
  if (thisCpu === variant) return { skip: `this CPU's own ggml variant is ${variant}: a pair with it would not cross CPUs (pick another with --cpu-variant)` };
  const build = await buildLlamaServer({ mandatory: false });
  if (build.binaryPath === undefined) return { skip: build.reason };
  let binary;
  try {
    binary = await llamaServerWithCpuVariant(build, variant);
  } catch (err) {
    return { skip: (err as Error).message };
  }
  const server = await startLlamaServer({ binaryPath: binary.binaryPath, modelPath: model.path, threads: 1, contextSize: 512 });
  // ggml logs the CPU library it loaded; the folder holds only the asked-for one, but say so from the horse's mouth.
  const loaded = server.process.logText.split("\n").find((l) => /libggml-cpu/.test(l));
  console.log(`cross-CPU pair: embedded engine on this CPU's ${thisCpu} kernels, llama-server ${binary.tag} on ${variant}'s (${loaded?.trim() ?? binary.binaryPath})`);
  const engine = createLlamaServerEngine({ baseURL: server.baseURL, eosToken: model.eosId, vocabSize: model.vocabSize, kind: `llama-server ${variant}` });
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
