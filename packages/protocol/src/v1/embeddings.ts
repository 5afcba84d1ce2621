import { base64 } from "@scure/base";
import { z } from "zod";
import { ERROR_CODE_LIST, type ErrorCode } from "../errors.js";
import { CHECK_ID_PATTERN } from "./check.js";
import { nodeMessage } from "./node-fields.js";
import { ModelName } from "./sampling.js";

/**
 * `POST /v1/embeddings` (OpenAI's shape) and the session messages that carry one to a node and its answer back.
 *
 * The client's `input` (a string, a list of strings, a list of token ids, or a list of those) is normalised at the edge
 * into a list of texts or a list of token-id lists, which is what a node gets (`embed.request`). A node answers with
 * one vector per input, each as base64 of little-endian float32 (`embed.result`): a quarter of the bytes of JSON
 * numbers, and no room for NaN or Infinity to hide in JSON. Nodes are untrusted: `checkEmbedResult` bounds and checks
 * every answer before a client sees it.
 */

/** As OpenAI: at most 2048 inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;
/** One input's characters (the request body is capped at 8 MiB as a whole anyway). */
export const MAX_EMBEDDING_INPUT_CHARS = 1_000_000;
/** One input's token ids; the node also refuses an input longer than its model's context. */
export const MAX_EMBEDDING_INPUT_TOKENS = 131_072;
/** The largest token id a client may send (any vocabulary is far smaller; the node checks its own). */
export const MAX_EMBEDDING_TOKEN_ID = 2 ** 31 - 1;
/** The widest vector a node may return (the largest embedding models are 4096 wide). */
export const MAX_EMBEDDING_DIMENSIONS = 16_384;
/** Numbers in one answer (inputs × dimension): 16 MiB of float32, so a whole answer fits one session frame. */
export const MAX_EMBEDDING_VALUES = 4 * 1024 * 1024;
/** Tokens a backend may add to one input (begin and end of sequence, a separator): bounds a node's token count. */
export const EMBEDDING_SPECIAL_TOKENS_PER_INPUT = 4;

export const EMBEDDING_ENCODING_FORMATS = ["float", "base64"] as const;

/** Validated and honoured by the embeddings route. */
export const HONOURED_EMBEDDING_FIELDS = ["model", "input", "encoding_format"] as const;
/** Accepted and ignored: bookkeeping for OpenAI's own platform, with no effect on the vectors. */
export const IGNORED_EMBEDDING_FIELDS = ["user"] as const;

/** What a node gets: a list of texts, or a list of token-id lists (never mixed, as OpenAI's four shapes never are). */
export type EmbeddingInputList = { texts: string[] } | { tokens: number[][] };

const EmbeddingText = z
  .string()
  .min(1, "an input cannot be an empty string")
  .max(MAX_EMBEDDING_INPUT_CHARS, `an input may hold at most ${MAX_EMBEDDING_INPUT_CHARS} characters`)
  .refine((s) => !s.includes("\u0000"), "an input cannot contain NUL characters");
const TokenId = z
  .number()
  .int("token ids are integers")
  .min(0, "token ids are not negative")
  .max(MAX_EMBEDDING_TOKEN_ID, `token ids are at most ${MAX_EMBEDDING_TOKEN_ID}`);
const EmbeddingTokens = z
  .array(TokenId)
  .min(1, "an input cannot be an empty list of tokens")
  .max(MAX_EMBEDDING_INPUT_TOKENS, `an input may hold at most ${MAX_EMBEDDING_INPUT_TOKENS} tokens`);
const TextList = z.array(EmbeddingText).min(1).max(MAX_EMBEDDING_INPUTS);
const TokensList = z.array(EmbeddingTokens).min(1).max(MAX_EMBEDDING_INPUTS);

/**
 * OpenAI's `input`: a string, a list of strings, a list of token ids, or a list of token-id lists. Each shape is told
 * apart by its first element, so an error names the field at fault (`input.3`, `input.0.7`) rather than "invalid
 * union".
 */
export const EmbeddingInput = z.unknown().transform((value, ctx): EmbeddingInputList => {
  const fail = (message: string, path: (string | number)[] = []) => {
    ctx.addIssue({ code: "custom", message, path });
    return z.NEVER;
  };
  const check = <T>(schema: z.ZodType<T>, v: unknown): T => {
    const parsed = schema.safeParse(v);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: issue.message, path: issue.path as (string | number)[] });
    return z.NEVER;
  };
  if (typeof value === "string") return { texts: [check(EmbeddingText, value)] };
  if (!Array.isArray(value)) return fail("input must be a string, a list of strings, a list of token ids or a list of token-id lists");
  if (value.length === 0) return fail("input cannot be an empty list");
  if (value.length > MAX_EMBEDDING_INPUTS) return fail(`input may hold at most ${MAX_EMBEDDING_INPUTS} items, got ${value.length}`);
  const first: unknown = value[0];
  if (typeof first === "string") return { texts: check(TextList, value) };
  if (typeof first === "number") {
    if (value.length > MAX_EMBEDDING_INPUT_TOKENS) return fail(`an input may hold at most ${MAX_EMBEDDING_INPUT_TOKENS} tokens`);
    return { tokens: [check(z.array(TokenId), value)] };
  }
  if (Array.isArray(first)) return { tokens: check(TokensList, value) };
  return fail("input items must be strings, token ids or lists of token ids", [0]);
});

export const EmbeddingsRequest = z.looseObject({
  model: ModelName,
  input: EmbeddingInput,
  encoding_format: z.enum(EMBEDDING_ENCODING_FORMATS).nullish(),
  user: z.string().max(512).nullish(),
});
export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequest>;

/**
 * The first field of an embeddings request Tessera would have to ignore silently, with the code and message to refuse
 * it by; or undefined. `dimensions` (OpenAI's shortening of text-embedding-3 vectors) is refused by name: a model here
 * returns its own dimension, and cutting the vectors of a model not trained for it would return something else than
 * the client asked for.
 */
export function unsupportedEmbeddingField(body: unknown): { param: string; code: ErrorCode; message: string } | undefined {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  for (const [field, value] of Object.entries(body)) {
    if ((HONOURED_EMBEDDING_FIELDS as readonly string[]).includes(field) || (IGNORED_EMBEDDING_FIELDS as readonly string[]).includes(field)) continue;
    if (value === null || value === undefined) continue;
    if (field === "dimensions") {
      return {
        param: "dimensions",
        code: "unsupported_parameter",
        message: "dimensions is not supported: every model on Tessera returns vectors of its own dimension; leave dimensions out",
      };
    }
    return { param: field, code: "bad_request", message: `unrecognized request argument: ${field}` };
  }
  return undefined;
}

/** One vector as OpenAI returns it: numbers, or (`encoding_format: "base64"`) base64 of little-endian float32. */
export interface EmbeddingObject {
  object: "embedding";
  index: number;
  embedding: number[] | string;
}

export interface EmbeddingsResponse {
  object: "list";
  data: EmbeddingObject[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

// ---- The node session -------------------------------------------------------------------------------------------

const RequestId = z.string().regex(CHECK_ID_PATTERN);

/** Coordinator → node: compute one vector per input with `model`. */
export const EmbedRequest = z.object({
  type: z.literal("embed.request"),
  request_id: RequestId,
  model: ModelName,
  input: z.union([z.object({ texts: TextList }).strict(), z.object({ tokens: TokensList }).strict()]),
});
export type EmbedRequest = z.infer<typeof EmbedRequest>;

/** Base64 characters of `bytes` bytes, padded. */
const base64Length = (bytes: number) => Math.ceil(bytes / 3) * 4;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Node → coordinator: the vectors, in input order, as base64 of little-endian float32, and the tokens it evaluated. */
export const EmbedResult = z.object({
  type: z.literal("embed.result"),
  request_id: RequestId,
  dimensions: z.number().int().min(1).max(MAX_EMBEDDING_DIMENSIONS),
  embeddings: z
    .array(z.string().max(base64Length(MAX_EMBEDDING_DIMENSIONS * 4)).regex(BASE64, "must be base64"))
    .min(1)
    .max(MAX_EMBEDDING_INPUTS),
  prompt_tokens: z.number().int().min(0).max(MAX_EMBEDDING_INPUTS * (MAX_EMBEDDING_INPUT_TOKENS + EMBEDDING_SPECIAL_TOKENS_PER_INPUT)),
});
export type EmbedResult = z.infer<typeof EmbedResult>;

/** Node → coordinator: it could not (an input longer than its context, the model not loaded, …). */
export const EmbedError = z.object({
  type: z.literal("embed.error"),
  request_id: RequestId,
  code: z.enum(ERROR_CODE_LIST as [ErrorCode, ...ErrorCode[]]),
  message: nodeMessage(1024),
});
export type EmbedError = z.infer<typeof EmbedError>;

/** Float32 vector → base64 of its little-endian bytes (what `embed.result` and `encoding_format: "base64"` carry). */
export function encodeEmbedding(vector: ArrayLike<number>): string {
  const floats = Float32Array.from(vector);
  const bytes = new Uint8Array(floats.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < floats.length; i++) view.setFloat32(i * 4, floats[i]!, true);
  return base64.encode(bytes);
}

/** base64 of little-endian float32 → the numbers; undefined when it is not base64 of a whole number of floats. */
export function decodeEmbedding(text: string): Float32Array | undefined {
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(text);
  } catch {
    return undefined;
  }
  if (bytes.length % 4 !== 0) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * The most tokens `input` can honestly be: one per UTF-8 byte of a text (no tokenizer spends less than a byte a token)
 * or the ids given, plus the special tokens a backend adds to each input.
 */
export function embeddingTokenBound(input: EmbeddingInputList): number {
  const items = "texts" in input ? input.texts.map((t) => new TextEncoder().encode(t).length) : input.tokens.map((t) => t.length);
  return items.reduce((sum, n) => sum + n + EMBEDDING_SPECIAL_TOKENS_PER_INPUT, 0);
}

export type CheckedEmbeddings = { ok: true; vectors: Float32Array[]; promptTokens: number } | { ok: false; reason: string };

/**
 * Judges a node's answer to an embedding request of `input`: exactly one vector per input, every one of the announced
 * dimension, every number finite, the answer within `MAX_EMBEDDING_VALUES`, and a token count no larger than the
 * input allows. Pure; a refusal says why in words (for the log; the coordinator then asks another node).
 */
export function checkEmbedResult(result: EmbedResult, input: EmbeddingInputList): CheckedEmbeddings {
  const count = "texts" in input ? input.texts.length : input.tokens.length;
  if (result.embeddings.length !== count) return { ok: false, reason: `sent ${result.embeddings.length} vectors for ${count} inputs` };
  if (count * result.dimensions > MAX_EMBEDDING_VALUES) {
    return { ok: false, reason: `sent ${count} × ${result.dimensions} numbers, more than ${MAX_EMBEDDING_VALUES}` };
  }
  const bound = embeddingTokenBound(input);
  if (result.prompt_tokens > bound) return { ok: false, reason: `claimed ${result.prompt_tokens} prompt tokens; the input has at most ${bound}` };
  const vectors: Float32Array[] = [];
  for (const [i, text] of result.embeddings.entries()) {
    const vector = decodeEmbedding(text);
    if (!vector) return { ok: false, reason: `vector ${i} is not base64 of float32 numbers` };
    if (vector.length !== result.dimensions) return { ok: false, reason: `vector ${i} has ${vector.length} numbers, not the ${result.dimensions} announced` };
    for (const x of vector) if (!Number.isFinite(x)) return { ok: false, reason: `vector ${i} holds a number that is not finite` };
    vectors.push(vector);
  }
  return { ok: true, vectors, promptTokens: result.prompt_tokens };
}
