import { TesseraError } from "@tessera/protocol";
import { type ScoreRequest, type ScoreResult, refuseConstraint } from "../adapter.js";
import {
  SCORE_TOP,
  type ScoreHttp,
  type ScoredPosition,
  bestRanked,
  checkScoreRequest,
  getJsonIfServed,
  malformedAnswer,
  postJson,
} from "../openai-compatible/score-http.js";
import { vllmChatPromptIds, vllmTokenize } from "./vllm-prompt-ids.js";
import { PromptMismatchError, sameTokens } from "../../prompt/prompt-tokens.js";

export interface VllmScorerOptions extends ScoreHttp {
  /**
   * End-of-sequence ids scored after the last token (the operator's `score_eos_token_ids`). When absent they are read
   * once from `GET /tokenizer_info` (served only with `vllm serve --enable-tokenizer-info-endpoint`): its `eos_token`
   * text, tokenised by `POST /tokenize` into exactly one id.
   */
  eosTokenIds?: readonly number[];
}

/** One entry of vLLM's `prompt_logprobs` (its `Logprob`): `rank` is the token's 1-based rank in the whole vocabulary. */
interface VllmLogprob {
  logprob?: unknown;
  rank?: unknown;
  decoded_token?: unknown;
}

/**
 * Scores given answer tokens on a vLLM server, for spot checks, in ONE request: `POST /v1/completions` with the prompt
 * as token ids, then the answer, then an end-of-sequence id, `prompt_logprobs: 20` and `max_tokens: 1` (vLLM must
 * generate at least one token; it is discarded). vLLM answers `choices[0].prompt_logprobs`, one entry per prompt
 * token: `null` for the first (nothing predicts it), then a dict keyed by token id (as a string) holding the token
 * actually there with its log-probability and exact vocabulary rank, plus the top 20 (`{logprob, rank,
 * decoded_token}`). These are the model's own log-probabilities over the whole vocabulary (vLLM computes prompt
 * logprobs from the raw logits; `-inf` is sent as -9999). vLLM caps the number by `--max-logprobs` (default 20).
 *
 * The prompt is what generation on this node ran: a chat rendered by the server's own template through
 * `POST /tokenize` with the same messages the chat route gets (`add_generation_prompt`, no special tokens added: the
 * template writes them), a raw prompt tokenised as `/v1/completions` tokenises text (special tokens added). Claimed
 * prompt ids that differ are `prompt_mismatch`. The appended EOS is the first of the EOS ids; the others are looked
 * up in the same position's top 20, and the best ranked is reported.
 */
export function createVllmScorer(options: VllmScorerOptions): (request: ScoreRequest) => Promise<ScoreResult> {
  const { kind } = options;
  let eosIds: Promise<number[]> | undefined = options.eosTokenIds?.length ? Promise.resolve([...options.eosTokenIds]) : undefined;

  const eos = (model: string): Promise<number[]> =>
    (eosIds ??= (async () => {
      const info = (await getJsonIfServed(options, "/tokenizer_info")) as { eos_token?: unknown } | null | undefined;
      if (info === undefined) {
        throw new TesseraError(
          "unsupported_parameter",
          `${kind}: cannot score the end of an answer: GET /tokenizer_info is not served (start vLLM with --enable-tokenizer-info-endpoint) and no end-of-sequence ids are set (--score-eos-token-ids, TESSERA_SCORE_EOS_TOKEN_IDS)`,
          { param: "score_eos_token_ids" },
        );
      }
      const raw = info?.eos_token;
      // transformers keeps special tokens as text or as an AddedToken, which vLLM serialises as an object with `content`.
      const text = typeof raw === "string" ? raw : raw && typeof raw === "object" && typeof (raw as { content?: unknown }).content === "string" ? (raw as { content: string }).content : undefined;
      if (!text) throw malformedAnswer(kind, "eos_token", "GET /tokenizer_info names no eos_token");
      const ids = await vllmTokenize(options, model, text, false);
      if (ids.length !== 1) throw malformedAnswer(kind, "eos_token", `the eos_token ${JSON.stringify(text)} is ${ids.length} tokens, not one`);
      return ids;
    })().catch((error: unknown) => {
      eosIds = undefined;
      throw error;
    }));

  return async (request) => {
    refuseConstraint(kind, request);
    checkScoreRequest(kind, request);
    const prompt = request.rawPrompt
      ? await vllmTokenize(options, request.model, request.messages[0]?.content ?? "", true)
      : await vllmChatPromptIds(options, request.model, request.messages);
    if (request.promptTokens !== undefined && !sameTokens(request.promptTokens, prompt)) throw new PromptMismatchError(request.promptTokens.length, prompt.length);
    const eosList = await eos(request.model);
    const ids = [...prompt, ...request.outputTokens, eosList[0]!];
    const res = (await postJson(options, "/v1/completions", {
      model: request.model,
      prompt: ids,
      max_tokens: 1,
      temperature: 0,
      prompt_logprobs: SCORE_TOP,
      stream: false,
    })) as { choices?: Array<{ prompt_logprobs?: unknown }> } | null;
    const entries = res?.choices?.[0]?.prompt_logprobs;
    if (!Array.isArray(entries)) throw malformedAnswer(kind, "prompt_logprobs", "choices[0].prompt_logprobs is missing (a vLLM without prompt log-probabilities?)");
    if (entries.length !== ids.length) throw malformedAnswer(kind, "prompt_logprobs", `${entries.length} entries for ${ids.length} prompt tokens`);

    const at = (index: number): { own: { logprob: number; rank: number }; dict: Record<string, VllmLogprob>; topMass: number } => {
      const dict = entries[index] as Record<string, VllmLogprob> | null;
      if (dict === null || typeof dict !== "object" || Array.isArray(dict)) throw malformedAnswer(kind, "prompt_logprobs", `entry ${index} is not a dict of token ids`);
      const own = readLogprob(kind, dict, ids[index]!, index);
      if (!own) throw malformedAnswer(kind, "prompt_logprobs", `entry ${index} lacks the token there (${ids[index]})`);
      let topMass = 0;
      for (const key of Object.keys(dict)) {
        const entry = readLogprob(kind, dict, Number(key), index);
        if (entry && entry.rank <= SCORE_TOP) topMass += Math.exp(entry.logprob);
      }
      return { own, dict, topMass: Math.min(1, topMass) };
    };

    const p = prompt.length;
    const positions: ScoredPosition[] = request.outputTokens.map((token, j) => {
      const { own, topMass } = at(p + j);
      return { token, logprob: own.logprob, rank: own.rank, topMass };
    });
    const last = at(p + request.outputTokens.length);
    const candidates = [last.own];
    for (const id of eosList.slice(1)) {
      const entry = readLogprob(kind, last.dict, id, p + request.outputTokens.length);
      if (entry) candidates.push(entry);
    }
    return { promptTokens: p, positions, eos: bestRanked(candidates) };
  };
}

/** One token's `{logprob, rank}` from a prompt_logprobs dict, undefined when absent, malformed when not numbers. */
function readLogprob(kind: string, dict: Record<string, VllmLogprob>, token: number, index: number): { logprob: number; rank: number } | undefined {
  if (!Object.hasOwn(dict, String(token))) return undefined;
  const entry = dict[String(token)];
  const logprob = entry?.logprob;
  const rank = entry?.rank;
  if (typeof logprob !== "number" || Number.isNaN(logprob)) throw malformedAnswer(kind, "prompt_logprobs", `entry ${index}, token ${token}: logprob is not a number`);
  if (!Number.isInteger(rank) || (rank as number) < 1) throw malformedAnswer(kind, "prompt_logprobs", `entry ${index}, token ${token}: rank is not a positive integer`);
  return { logprob: Math.min(0, logprob), rank: rank as number };
}
