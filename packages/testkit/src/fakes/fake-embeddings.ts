import type { ServerResponse } from "node:http";
import { sendJson } from "./fake-http-server.js";
import { tokenize } from "./fake-tokens.js";

/**
 * Embeddings as the fakes answer them: a deterministic unit vector per input (the same input, the same vector), so a
 * test can check that vectors arrive whole, in order, and unchanged. Two wire formats:
 * - OpenAI-compatible `POST /v1/embeddings` (`{model, input: string | string[] | number[] | number[][],
 *   encoding_format}` → `{object:"list", data:[{object:"embedding", index, embedding}], model, usage:{prompt_tokens,
 *   total_tokens}}`); `encoding_format: "base64"` gives base64 of little-endian float32, as OpenAI does;
 * - Ollama's `POST /api/embed` (`{model, input: string | string[], truncate}` → `{model, embeddings:[[…]],
 *   total_duration, load_duration, prompt_eval_count}`).
 */
export const FAKE_EMBEDDING_DIMENSION = 16;

/** The fakes' vector for one input (text or token ids), of `dimension` numbers and length 1. */
export function fakeEmbedding(input: string | readonly number[], dimension = FAKE_EMBEDDING_DIMENSION): number[] {
  const key = typeof input === "string" ? input : input.join(",");
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  const raw = Array.from({ length: dimension }, (_, i) => Math.sin(h + i * 12.9898) * 43758.5453 % 1);
  const norm = Math.sqrt(raw.reduce((s, x) => s + x * x, 0)) || 1;
  return raw.map((x) => Math.fround(x / norm));
}

const tokensOf = (item: string | readonly number[]) => (typeof item === "string" ? tokenize(item).length + 1 : item.length);

function inputList(input: unknown): Array<string | number[]> | undefined {
  if (typeof input === "string") return [input];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  if (input.every((x) => typeof x === "string")) return input as string[];
  if (input.every((x) => typeof x === "number")) return [input as number[]];
  if (input.every((x) => Array.isArray(x) && x.every((t) => typeof t === "number"))) return input as number[][];
  return undefined;
}

function base64Float32(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString("base64");
}

/** OpenAI-compatible `POST /v1/embeddings` for a model known to serve embeddings; `error` answers the rest. */
export function writeOpenAIEmbeddings(res: ServerResponse, body: { model?: unknown; input?: unknown; encoding_format?: unknown }, dimension: number, error: (status: number, message: string) => void): void {
  const items = inputList(body.input);
  if (!items) return error(400, "input must be a string, an array of strings, or an array of token arrays");
  const base64 = body.encoding_format === "base64";
  const tokens = items.reduce((n, item) => n + tokensOf(item), 0);
  sendJson(res, 200, {
    object: "list",
    data: items.map((item, index) => ({ object: "embedding", index, embedding: base64 ? base64Float32(fakeEmbedding(item, dimension)) : fakeEmbedding(item, dimension) })),
    model: body.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

/** Ollama's `POST /api/embed`. */
export function writeOllamaEmbed(res: ServerResponse, model: string, body: { input?: unknown }, dimension: number): void {
  const items = typeof body.input === "string" ? [body.input] : Array.isArray(body.input) && body.input.every((x) => typeof x === "string") ? (body.input as string[]) : undefined;
  if (!items || items.length === 0) return sendJson(res, 400, { error: "invalid input type" });
  sendJson(res, 200, {
    model,
    embeddings: items.map((item) => fakeEmbedding(item, dimension)),
    total_duration: 14_143_917,
    load_duration: 1_019_500,
    prompt_eval_count: items.reduce((n, item) => n + tokensOf(item), 0),
  });
}
