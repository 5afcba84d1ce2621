import { z } from "zod";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "../hex.js";
import { type SignatureVerifier, type Signer, referenceVerifier } from "../signer.js";

/**
 * What a node commits to about one answer (trust issue §3), which the payment issue's receipt carries: the job, the
 * model file's SHA-256, the sampling and the coordinator's seed, the finish reason, the output token ids and their
 * log-probabilities. The node signs the digest (BIP-340) in a `result` stream part just before `finish`; the
 * coordinator recomputes the digest from what it relayed and checks the signature, so a node cannot later disown what
 * it streamed, and cannot claim what it did not stream.
 *
 * Canonical bytes: UTF-8 JSON of a fixed-order array (never an object, whose key order a re-encoder may change),
 * numbers in JavaScript's shortest round-trip form:
 *   ["tessera-result-v1", job_id, model_sha256 | null, [temperature, top_p, max_tokens, seed], finish_reason,
 *    [output token ids…], [logprob of each output token…] (empty when the backend gives none)]
 */
export const RESULT_COMMITMENT_VERSION = "tessera-result-v1";

export interface ResultCommitmentInput {
  jobId: string;
  /** Lowercase hex SHA-256 of the model file, or null where the node has no file (an HTTP backend). */
  modelSha256: string | null;
  sampling: { temperature: number; top_p: number; max_tokens: number; seed: number };
  finishReason: "stop" | "length";
  outputTokens: readonly number[];
  /** One per output token, or empty. */
  logprobs: readonly number[];
}

export function resultCommitmentBytes(input: ResultCommitmentInput): Uint8Array {
  if (input.modelSha256 !== null && !/^[0-9a-f]{64}$/.test(input.modelSha256)) throw new RangeError("modelSha256 must be 64 lowercase hex digits or null");
  if (input.logprobs.length !== 0 && input.logprobs.length !== input.outputTokens.length) {
    throw new RangeError(`${input.logprobs.length} log-probabilities for ${input.outputTokens.length} output tokens`);
  }
  for (const v of [...input.outputTokens, input.sampling.seed, input.sampling.max_tokens]) if (!Number.isSafeInteger(v)) throw new RangeError(`not an integer: ${v}`);
  for (const v of [...input.logprobs, input.sampling.temperature, input.sampling.top_p]) if (!Number.isFinite(v)) throw new RangeError(`not a finite number: ${v}`);
  const s = input.sampling;
  return utf8ToBytes(
    JSON.stringify([RESULT_COMMITMENT_VERSION, input.jobId, input.modelSha256, [s.temperature, s.top_p, s.max_tokens, s.seed], input.finishReason, input.outputTokens, input.logprobs]),
  );
}

/** Lowercase hex SHA-256 of the canonical bytes: what the node signs. */
export function resultCommitment(input: ResultCommitmentInput): string {
  return bytesToHex(sha256(resultCommitmentBytes(input)));
}

export function signResultCommitment(signer: Signer, input: ResultCommitmentInput): string {
  return signer.sign(sha256(resultCommitmentBytes(input)));
}

/** Whether `signature` is the node's signature over exactly this result. Never throws. */
export function verifyResultCommitment(signature: string, input: ResultCommitmentInput, nodeId: string, verifier: SignatureVerifier = referenceVerifier): boolean {
  try {
    return verifier.verify(signature, sha256(resultCommitmentBytes(input)), nodeId);
  } catch {
    return false;
  }
}

/** The stream part that carries the node's signature, just before `finish` (stream-part.ts). */
export const ResultPart = z.object({
  type: z.literal("result"),
  finish_reason: z.enum(["stop", "length"]),
  model_sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  signature: z.string().regex(/^[0-9a-f]{128}$/),
});
export type ResultPart = z.infer<typeof ResultPart>;
