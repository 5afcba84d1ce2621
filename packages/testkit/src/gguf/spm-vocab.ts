import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { readGgufMetadata } from "./gguf-metadata-reader.js";

const run = promisify(execFile);

/** The llama.cpp source path of the vocabulary-only GGUF of Llama 1/2's SentencePiece tokenizer (32 000 tokens). */
export const SPM_VOCAB_PATH_IN_BUNDLE = "models/ggml-vocab-llama-spm.gguf";
const CACHE_NAME = "ggml-vocab-llama-spm.gguf";

/** A tokenizer vocabulary as GGUF stores it (SentencePiece layout; the byte-only test vocabulary uses it too). */
export interface SpmVocab {
  tokens: string[];
  scores: number[];
  tokenTypes: number[];
  bosId: number;
  eosId: number;
  unknownId: number;
}

/** Where node-llama-cpp keeps the llama.cpp sources it was built from (a git bundle). */
export function llamaCppBundlePath(): string {
  // node-llama-cpp exports only its entry points, not package.json: its entry is <root>/dist/index.js.
  const entry = createRequire(import.meta.url).resolve("node-llama-cpp");
  return join(dirname(dirname(entry)), "llama", "gitRelease.bundle");
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Returns a local copy of the SPM vocabulary GGUF, extracting it from node-llama-cpp's git bundle into `cacheDir`
 * on first use (needs the `git` CLI; ~1 s). The bundle is read into a throw-away bare repository in the OS temp dir.
 */
export async function ensureSpmVocabFile(cacheDir: string): Promise<string> {
  const target = join(cacheDir, CACHE_NAME);
  if (await exists(target)) return target;
  const bundle = llamaCppBundlePath();
  if (!(await exists(bundle))) throw new Error(`node-llama-cpp's llama.cpp source bundle is missing at ${bundle}`);
  const repo = await mkdtemp(join(tmpdir(), "tessera-vocab-"));
  try {
    await run("git", ["init", "-q", "--bare", repo]);
    await run("git", ["-C", repo, "fetch", "-q", bundle, "HEAD"]);
    const { stdout } = await run("git", ["-C", repo, "cat-file", "blob", `FETCH_HEAD:${SPM_VOCAB_PATH_IN_BUNDLE}`], {
      encoding: "buffer",
      maxBuffer: 64 << 20,
    });
    await mkdir(cacheDir, { recursive: true });
    const partial = `${target}.${process.pid}.partial`;
    await writeFile(partial, stdout);
    await rename(partial, target); // atomic: concurrent makers never see a half-written cache
    return target;
  } catch (error) {
    throw new Error(`could not extract ${SPM_VOCAB_PATH_IN_BUNDLE} from ${bundle} (is git installed?)`, { cause: error });
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
}

/** Loads the Llama SPM vocabulary (tokens, scores, types, special ids) via the metadata reader. */
export async function loadSpmVocab(cacheDir: string): Promise<SpmVocab> {
  const path = await ensureSpmVocabFile(cacheDir);
  const { metadata } = await readGgufMetadata(path);
  const get = (key: string) => {
    const v = metadata.get(key);
    if (v === undefined) throw new Error(`${path} lacks ${key}`);
    return v;
  };
  return {
    tokens: get("tokenizer.ggml.tokens") as string[],
    scores: get("tokenizer.ggml.scores") as number[],
    tokenTypes: get("tokenizer.ggml.token_type") as number[],
    bosId: Number(get("tokenizer.ggml.bos_token_id")),
    eosId: Number(get("tokenizer.ggml.eos_token_id")),
    unknownId: Number(get("tokenizer.ggml.unknown_token_id")),
  };
}
