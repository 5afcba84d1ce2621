import { TesseraError } from "@tessera/protocol";
import type { ScoreRequest, ScoreResult } from "../adapter.js";
import { errorFromFetchFailure, errorFromResponse } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";

/**
 * What the prompt-log-probability scorers (vLLM's `prompt_logprobs`, SGLang's `input_token_logprobs`) share: the
 * HTTP calls, the bounds, and the one way a malformed answer is reported. Each scorer knows its own wire format.
 */

/** Alternatives asked per position: the checks judge ranks up to 20 (coordinator trust design, "The checks"). */
export const SCORE_TOP = 20;
/** The rank reported for a token outside the top 20 when the server gives no exact rank (as llama-server's scorer). */
export const OUTSIDE_TOP = SCORE_TOP + 1;
/** Longest answer scored, positions; the checks look at up to 256. */
export const MAX_SCORED_POSITIONS = 512;

export interface ScoreHttp {
  baseURL: string;
  fetch: typeof globalThis.fetch;
  headers: Record<string, string>;
  /** Names the backend in every error. */
  kind: string;
}

/**
 * The server answered 200 but not in the shape its wire format promises (a field missing, another token than the one
 * sent, a rank that is not a positive integer). Always `internal_error` (the check is abandoned, nobody is charged),
 * with `param` naming the field, so callers and tests branch on the code and the field, never the text.
 */
export function malformedAnswer(kind: string, field: string, detail: string): TesseraError {
  return new TesseraError("internal_error", `${kind}: malformed ${field} in the scoring answer: ${detail}`, { param: field });
}

async function send(http: ScoreHttp, path: string, init: RequestInit, notServed?: "undefined-on-404"): Promise<unknown> {
  const url = joinUrl(http.baseURL, path);
  let res: Response;
  try {
    res = await http.fetch(url, { ...init, headers: http.headers });
  } catch (err) {
    throw errorFromFetchFailure(http.kind, url, err);
  }
  if (res.status === 404 && notServed) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) throw await errorFromResponse(http.kind, res);
  try {
    return await res.json();
  } catch (err) {
    throw new TesseraError("internal_error", `${http.kind}: ${path} answered a body that is not JSON`, { cause: err });
  }
}

export function postJson(http: ScoreHttp, path: string, body: unknown): Promise<unknown> {
  return send(http, path, { method: "POST", body: JSON.stringify(body) });
}

/** A GET of an endpoint the server may not serve (vLLM's optional `/tokenizer_info`): undefined on 404. */
export function getJsonIfServed(http: ScoreHttp, path: string): Promise<unknown> {
  return send(http, path, { method: "GET" }, "undefined-on-404");
}

/** Refuses work the checks never ask for, before any request: an empty or over-long answer. */
export function checkScoreRequest(kind: string, request: ScoreRequest): void {
  if (request.outputTokens.length > MAX_SCORED_POSITIONS) {
    throw new TesseraError("bad_request", `${kind}: ${request.outputTokens.length} tokens to score; at most ${MAX_SCORED_POSITIONS}`, { param: "output_tokens" });
  }
  for (const t of request.outputTokens) {
    if (!Number.isInteger(t) || t < 0) throw new TesseraError("bad_request", `${kind}: output token ${String(t)} is not a token id`, { param: "output_tokens" });
  }
}

/** A token list from a tokenize answer (`tokens`), or a malformed-answer error naming where it came from. */
export function tokenList(kind: string, field: string, value: unknown): number[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((t) => Number.isInteger(t) && (t as number) >= 0)) {
    throw malformedAnswer(kind, field, "expected a non-empty list of token ids");
  }
  return value as number[];
}

/** One position as scored: the given token's log-probability and rank, and the top-20 mass there. */
export type ScoredPosition = ScoreResult["positions"][number];

/**
 * EOS after the last token when a model has several end-of-sequence ids (Llama 3's `<|eot_id|>` and
 * `<|end_of_text|>`): the best ranked of them, since stopping on any is what the node's server does.
 */
export function bestRanked(candidates: Array<{ logprob: number; rank: number }>): { logprob: number; rank: number } {
  let best = candidates[0]!;
  for (const c of candidates) if (c.rank < best.rank || (c.rank === best.rank && c.logprob > best.logprob)) best = c;
  return best;
}

/** Parses an operator's list of EOS ids once, at adapter creation. */
export function eosIdList(kind: string, ids: readonly number[] | undefined): number[] | undefined {
  if (ids === undefined || ids.length === 0) return undefined;
  for (const id of ids) if (!Number.isInteger(id) || id < 0) throw new TesseraError("bad_request", `${kind}: end-of-sequence id ${String(id)} is not a token id`, { param: "score_eos_token_ids" });
  return [...ids];
}
