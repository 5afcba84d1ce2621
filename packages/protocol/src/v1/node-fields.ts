import { z } from "zod";

/**
 * What a node may say about itself. Nodes are untrusted and what they send is stored and served to every client
 * (`/v1/models`, the dashboard), so identifiers keep to a conservative charset, free text to printable characters
 * without markup, numbers to physical ranges, and lists to a cap. One definition each, used by every node message.
 */

/** Models one node may announce (registration, heartbeat, loaded list). */
export const MAX_MODELS_PER_NODE = 64;
/** GPUs one machine may report. */
export const MAX_GPUS_PER_NODE = 16;
/** Jobs one node may run at once (the daemon's `--max-concurrency` has the same bound). */
export const MAX_NODE_CONCURRENCY = 1024;
/** 1 TiB in MiB: more memory than any one accelerator or stage holds. */
export const MAX_MEMORY_MB = 1024 * 1024;
/** 64 TiB in MiB: more RAM than any one machine has. */
export const MAX_RAM_MB = 64 * 1024 * 1024;
/** 1 PiB: bounds every byte count a node reports (model files, downloads, free memory). */
export const MAX_BYTES = 2 ** 50;

/**
 * A model id as a node announces it: a letter or digit, then letters, digits and `. _ : / @ + -`, at most 128 in
 * all. Covers what users load: `qwen2.5:7b-instruct-q4_K_M`, `meta-llama/Llama-3.1-8B-Instruct`,
 * `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`, `tessera-demo`.
 */
export const NODE_MODEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$/;
/**
 * The model id a file name gives (`My Model (v2).gguf` → `My-Model-v2`): every run of characters a model id may not
 * hold becomes one `-`, and the result starts with a letter or digit and fits 128 characters. Pass the name without
 * its extension.
 */
export function modelIdFromFileName(stem: string): string {
  const id = stem.replace(/[^A-Za-z0-9._:/@+-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 128).replace(/-+$/, "");
  return id === "" ? "model" : id;
}

export const NodeModelId = z
  .string()
  .regex(NODE_MODEL_ID_PATTERN, "model id must start with a letter or digit and use only letters, digits and . _ : / @ + - (at most 128)");

/** A short identifier (backend kind, version, command id): letters, digits and `. _ : + -`. */
export function nodeToken(max: number) {
  return z
    .string()
    .regex(new RegExp(`^[A-Za-z0-9][A-Za-z0-9._:+-]{0,${max - 1}}$`), `must be letters, digits and . _ : + - (at most ${max})`);
}

/**
 * Printable text (a GPU's marketing name, a progress line): no control or format characters (which covers NUL and
 * bidi overrides) and none of `< > " ' &`, so it is inert wherever it is shown.
 */
// eslint-disable-next-line no-control-regex
const PRINTABLE = /^[^\p{Cc}\p{Cf}\p{Cs}\p{Co}<>"'&]*$/u;
export function nodeText(max: number) {
  return z.string().max(max).regex(PRINTABLE, "must be printable text without control characters or < > \" ' &");
}

/** An error message a node reports: any printable text (quotes allowed, it is never markup), bounded. */
// eslint-disable-next-line no-control-regex
const MESSAGE = /^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\p{Cs}]*$/u;
export function nodeMessage(max: number) {
  return z.string().max(max).regex(MESSAGE, "must be text without control characters");
}

export const NodeMemoryMb = z.number().min(0).max(MAX_MEMORY_MB);
export const NodeByteCount = z.number().int().min(0).max(MAX_BYTES);
