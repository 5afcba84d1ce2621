/**
 * What every result carries (trust issue §3), as one canonical byte string and its SHA-256: the output token ids,
 * the finish reason, the per-token log-probabilities, the model file's SHA-256, the sampling parameters and the
 * coordinator's seed. The node signs the digest; a checker recomputes it from the same fields.
 *
 * Canonical form: JSON of a fixed-order array (never an object, whose key order a re-encoder might change), numbers
 * as JavaScript's shortest round-trip decimal, log-probabilities as given (they travel as JSON numbers too). Not
 * wired into the wire protocol yet: this is the pure function the job runner and the receipt will share.
 */
import { createHash } from "node:crypto";
import type { GeneratedToken } from "./types.js";

export interface ResultCommitmentInput {
  outputTokens: readonly number[];
  finishReason: "stop" | "length";
  /** One per output token; may be empty where the backend exposes none. */
  logprobs: readonly GeneratedToken[];
  /** Lowercase hex SHA-256 of the model file (or the backend's model digest). */
  modelSha256: string;
  sampling: { temperature: number; topP: number };
  seed: number;
}

export const RESULT_COMMITMENT_VERSION = "tessera-result-v1";

export function resultCommitmentBytes(input: ResultCommitmentInput): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(input.modelSha256)) throw new RangeError("modelSha256 must be 64 lowercase hex digits");
  if (input.logprobs.length !== 0 && input.logprobs.length !== input.outputTokens.length) {
    throw new RangeError(`logprobs has ${input.logprobs.length} entries for ${input.outputTokens.length} output tokens`);
  }
  for (const v of [...input.outputTokens, input.seed]) if (!Number.isSafeInteger(v)) throw new RangeError(`not an integer: ${v}`);
  const canonical = [
    RESULT_COMMITMENT_VERSION,
    input.modelSha256,
    [input.sampling.temperature, input.sampling.topP, input.seed],
    input.finishReason,
    input.outputTokens,
    input.logprobs.map((l) => [l.token, l.logprob, l.top.map((t) => [t.token, t.logprob])]),
  ];
  return new TextEncoder().encode(JSON.stringify(canonical));
}

/** Lowercase hex SHA-256 of the canonical bytes. */
export function resultCommitment(input: ResultCommitmentInput): string {
  return createHash("sha256").update(resultCommitmentBytes(input)).digest("hex");
}
