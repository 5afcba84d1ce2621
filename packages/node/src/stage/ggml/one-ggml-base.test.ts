/**
 * One libggml-base per process (design.md): node-llama-cpp's addon, the CPU variants and the GPU backends all bind
 * their `DT_NEEDED libggml-base.so` to the first libggml-base the process mapped, whatever its folder, so a span
 * asked to load ggml from another folder of the same release uses the one already mapped instead of mapping a
 * second copy, and a folder of another release is refused, before and after node-llama-cpp has loaded. Run on the
 * CPU builds: a copy of node-llama-cpp's CPU package in another folder stands in for the GPU package's folder.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { makeTinyModel } from "@tessera/testkit";
import { findGgmlDir, loadGgml, mappedGgmlBaseDir } from "./ggml-lib.js";
import { loadGgmlStage } from "./ggml-stage.js";

const own = findGgmlDir();
const linux = process.platform === "linux";
let tmp: string;
let sameRelease: string;
let otherRelease: string;
let modelPath: string;
let llama: Llama | undefined;
let model: LlamaModel | undefined;

/** The folders of every libggml-base this process has mapped. */
function mappedBases(): string[] {
  const paths = readFileSync("/proc/self/maps", "utf8").split("\n").map((l) => l.split(/\s+/).slice(5).join(" ")).filter((p) => p.endsWith("/libggml-base.so"));
  return [...new Set(paths)];
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "one-ggml-base-"));
  modelPath = (await makeTinyModel({ path: join(tmp, "tiny.gguf"), weightType: "f16", vocab: "bytes", seed: 7, blockCount: 3 })).path;
  if (!own) return;
  sameRelease = join(tmp, "same");
  cpSync(own, sameRelease, { recursive: true });
  otherRelease = join(tmp, "other");
  cpSync(own, otherRelease, { recursive: true });
  const meta = JSON.parse(readFileSync(join(own, "_nlcBuildMetadata.json"), "utf8")) as { buildOptions: { llamaCpp: { release: string } } };
  meta.buildOptions.llamaCpp.release = "v0.0.1-other";
  writeFileSync(join(otherRelease, "_nlcBuildMetadata.json"), JSON.stringify(meta));
}, 120_000);

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe("mappedGgmlBaseDir", () => {
  it("reads the folder of a mapped libggml-base from /proc/self/maps lines", () => {
    const maps = [
      "7f00-7f10 r--p 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6",
      "7f20-7f30 r-xp 00001000 08:01 5678 /data/gpu runtime/bins/linux-x64-vulkan/libggml-base.so",
    ].join("\n");
    expect(mappedGgmlBaseDir(maps)).toBe(linux ? "/data/gpu runtime/bins/linux-x64-vulkan" : undefined);
    expect(mappedGgmlBaseDir("7f00-7f10 r--p 00000000 08:01 1234 /usr/lib/libc.so.6\n")).toBeUndefined();
    expect(mappedGgmlBaseDir(undefined)).toBeUndefined();
  });
});

// In this order: nothing mapped, then node-llama-cpp's engine loaded, then a span from another folder.
describe.runIf(linux && own !== undefined)("one libggml-base per process, on the CPU builds", () => {
  it("with none mapped yet, refuses a folder of another release than node-llama-cpp's own build", () => {
    expect(mappedBases()).toEqual([]);
    expect(() => loadGgml(otherRelease)).toThrow(/holds ggml v0\.0\.1-other, and this node-llama-cpp's own build .* is v\S+: llama\.cpp loaded later in this process would run on the first/);
    expect(mappedBases()).toEqual([]);
  });

  it("with node-llama-cpp's engine loaded, refuses another release and uses the engine's base for the same release", async () => {
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath });
    const engineBases = mappedBases();
    expect(engineBases).toHaveLength(1);
    expect(() => loadGgml(otherRelease)).toThrow(/ggml v\S+ is already loaded from .*; .* holds v0\.0\.1-other, and one process runs one release/);

    // Asked for the copy's folder, ggml comes from the folder already mapped: still one libggml-base in the process.
    const g = loadGgml(sameRelease);
    expect(join(g.dir, "libggml-base.so")).toBe(engineBases[0]);
    expect(mappedBases()).toEqual(engineBases);

    // The span and the engine both compute on it: the span's greedy next token is the engine's.
    const stage = loadGgmlStage({ path: modelPath, start: 0, end: 3, libDir: sameRelease });
    const logits = stage.forward("r", [1, 2, 3], [0, 1, 2]);
    let argmax = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[argmax]!) argmax = i;
    stage.close();
    const context = await model.createContext({ contextSize: 64 });
    const sequence = context.getSequence();
    let first: number | undefined;
    for await (const token of sequence.evaluate([1, 2, 3] as Token[])) {
      first = token;
      break;
    }
    await context.dispose();
    expect(first).toBe(argmax);
    expect(mappedBases()).toEqual(engineBases);
  }, 60_000);
});
