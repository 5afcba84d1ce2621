import { TesseraError } from "@tessera/protocol";
import { type ScoreRequest, type ScoreResult, refuseConstraint } from "../adapter.js";
import {
  OUTSIDE_TOP,
  SCORE_TOP,
  type ScoreHttp,
  type ScoredPosition,
  bestRanked,
  checkScoreRequest,
  malformedAnswer,
  postJson,
} from "../openai-compatible/score-http.js";
import { PromptMismatchError, sameTokens } from "../../prompt/prompt-tokens.js";
import { sglangChatPromptIds, sglangTokenize } from "./sglang-prompt-ids.js";

export interface SglangScorerOptions extends ScoreHttp {
  /**
   * End-of-sequence ids scored after the last token (the operator's `score_eos_token_ids`; required: SGLang serves no
   * endpoint that names them). The first is appended to the scored ids; the others are looked up in its top 20.
   */
  eosTokenIds: readonly number[];
}

/**
 * Scores given answer tokens on an SGLang server, for spot checks, in ONE request: `POST /generate` with `input_ids`
 * = prompt ids, the answer, an end-of-sequence id; `return_logprob: true`, `top_logprobs_num: 20`,
 * `logprob_start_len` = the prompt's length − 1, and `max_new_tokens: 1` (generation must take a step; it is
 * discarded). SGLang answers in `meta_info`:
 * - `input_token_logprobs`: one `[logprob, token_id, text|null]` per input id from `logprob_start_len` on, the first
 *   padded with a null logprob (nothing before the window predicts it), so entry k is `input_ids[start + k]` under
 *   everything before it;
 * - `input_top_logprobs`: per entry the 20 likeliest `[logprob, token_id, text|null]`, best first (null for the first).
 * SGLang gives no rank: a token in the top 20 gets its place there, one outside it rank 21 with its exact
 * log-probability. Every entry's token id is checked against the id sent; any other shape is a malformed answer.
 *
 * The prompt is what generation on this node ran: a chat rendered by the server's template, read back as
 * `choices[0].prompt_token_ids` from a one-token `POST /v1/chat/completions` with `return_prompt_token_ids: true`
 * (SGLang 0.5.13 and later); a raw prompt as `POST /v1/tokenize` tokenises it with special tokens added, as the
 * completion route does. Claimed prompt ids that differ are `prompt_mismatch`.
 */
export function createSglangScorer(options: SglangScorerOptions): (request: ScoreRequest) => Promise<ScoreResult> {
  const { kind } = options;
  if (options.eosTokenIds.length === 0) throw new TesseraError("bad_request", `${kind}: scoring needs the model's end-of-sequence ids (--score-eos-token-ids)`, { param: "score_eos_token_ids" });
  const eosIds = [...options.eosTokenIds];

  const promptIds = (request: ScoreRequest): Promise<number[]> =>
    request.rawPrompt ? sglangTokenize(options, request.model, request.messages[0]?.content ?? "", true) : sglangChatPromptIds(options, request.model, request.messages);

  return async (request) => {
    refuseConstraint(kind, request);
    checkScoreRequest(kind, request);
    const prompt = await promptIds(request);
    if (request.promptTokens !== undefined && !sameTokens(request.promptTokens, prompt)) throw new PromptMismatchError(request.promptTokens.length, prompt.length);
    const ids = [...prompt, ...request.outputTokens, eosIds[0]!];
    const start = prompt.length - 1;
    const res = (await postJson(options, "/generate", {
      input_ids: ids,
      return_logprob: true,
      logprob_start_len: start,
      top_logprobs_num: SCORE_TOP,
      sampling_params: { max_new_tokens: 1, temperature: 0 },
      stream: false,
    })) as { meta_info?: { input_token_logprobs?: unknown; input_top_logprobs?: unknown } } | null;
    const tokenLogprobs = res?.meta_info?.input_token_logprobs;
    const topLogprobs = res?.meta_info?.input_top_logprobs;
    if (!Array.isArray(tokenLogprobs)) throw malformedAnswer(kind, "input_token_logprobs", "meta_info.input_token_logprobs is missing (return_logprob not honoured?)");
    if (!Array.isArray(topLogprobs)) throw malformedAnswer(kind, "input_top_logprobs", "meta_info.input_top_logprobs is missing (top_logprobs_num not honoured?)");
    const expected = ids.length - start;
    if (tokenLogprobs.length !== expected) throw malformedAnswer(kind, "input_token_logprobs", `${tokenLogprobs.length} entries for the ${expected} ids from logprob_start_len ${start}`);
    if (topLogprobs.length !== expected) throw malformedAnswer(kind, "input_top_logprobs", `${topLogprobs.length} entries for the ${expected} ids from logprob_start_len ${start}`);

    // Entry k (k ≥ 1) scores ids[start + k]: the answer's tokens are k = 1..n, the appended EOS k = n + 1.
    const at = (k: number) => {
      const token = ids[start + k]!;
      const own = readTuple(kind, "input_token_logprobs", tokenLogprobs[k], k);
      if (own.token !== token) throw malformedAnswer(kind, "input_token_logprobs", `entry ${k} is token ${own.token}, but ${token} was sent there`);
      const rawTop = topLogprobs[k];
      if (!Array.isArray(rawTop) || rawTop.length === 0) throw malformedAnswer(kind, "input_top_logprobs", `entry ${k} is not a list of [logprob, token_id, text]`);
      const top = rawTop.map((t) => readTuple(kind, "input_top_logprobs", t, k));
      return { token, logprob: own.logprob, top };
    };
    const rankIn = (top: Array<{ token: number }>, token: number) => {
      const i = top.findIndex((t) => t.token === token);
      return i >= 0 && i < SCORE_TOP ? i + 1 : OUTSIDE_TOP;
    };
    const massOf = (top: Array<{ logprob: number }>) => Math.min(1, top.slice(0, SCORE_TOP).reduce((sum, t) => sum + Math.exp(t.logprob), 0));

    const positions: ScoredPosition[] = request.outputTokens.map((token, j) => {
      const scored = at(j + 1);
      return { token, logprob: scored.logprob, rank: rankIn(scored.top, token), topMass: massOf(scored.top) };
    });
    const last = at(request.outputTokens.length + 1);
    const candidates = [{ logprob: last.logprob, rank: rankIn(last.top, last.token) }];
    for (const id of eosIds.slice(1)) {
      const entry = last.top.find((t) => t.token === id);
      if (entry) candidates.push({ logprob: entry.logprob, rank: rankIn(last.top, id) });
    }
    return { promptTokens: prompt.length, positions, eos: bestRanked(candidates) };
  };
}

/** A `[logprob, token_id, text|null]` tuple; anything else is a malformed answer naming the field and entry. */
function readTuple(kind: string, field: string, value: unknown, k: number): { logprob: number; token: number } {
  if (!Array.isArray(value) || value.length < 2) throw malformedAnswer(kind, field, `entry ${k} is not [logprob, token_id, text]`);
  const [logprob, token] = value as [unknown, unknown];
  if (typeof logprob !== "number" || Number.isNaN(logprob)) throw malformedAnswer(kind, field, `entry ${k}: logprob is not a number`);
  if (!Number.isInteger(token) || (token as number) < 0) throw malformedAnswer(kind, field, `entry ${k}: token_id is not a token id`);
  return { logprob: Math.min(0, logprob), token: token as number };
}
