import { TesseraError } from "@tessera/protocol";
import { type ScoreRequest, type ScoreResult, refuseConstraint } from "../adapter.js";
import { errorFromFetchFailure, errorFromResponse } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";
import { PromptMismatchError, sameTokens } from "../../prompt/prompt-tokens.js";
import type { LlamaServerPrompt } from "./canonical-prompt.js";
import { createLlamaServerPost } from "./post-json.js";
import { createTopAfter, placeIn } from "./top-after.js";
import { toolPromptMessages } from "../../constrained/tool-prompt.js";

/** Longest answer scored, positions; the checks look at up to 256. */
export const MAX_SCORED_POSITIONS = 512;

export interface LlamaServerScorerOptions {
  baseURL: string;
  fetch: typeof globalThis.fetch;
  headers: Record<string, string>;
  kind: string;
  /** The canonical prompt ids of a chat, as generation on this node runs them (canonical-prompt.ts). */
  prompt: LlamaServerPrompt;
}

/**
 * Scores given answer tokens on llama.cpp's `llama-server`, for spot checks (the "llama-server, one position at
 * a time, as a fallback"). llama-server has no prompt log-probabilities, so each position is one `POST /completion`
 * of the prompt and the answer so far (top-after.ts: the top 20 of the model's own distribution there, one new token
 * decoded per request, a byte-fallback token the server withholds probabilities for asked again with it banned).
 *
 * The prompt is what generation runs: a chat's canonical prompt ids (the one renderer over the server's declared
 * template, canonical-prompt.ts), compared with the ids the checked node claims it ran (a difference is
 * `prompt_mismatch`, which fails the check); a raw prompt as is, tokenised as the server tokenises a prompt (BOS
 * added, special tokens parsed). A server that cannot render canonically (no `/props`) does not score chats.
 */
export function createLlamaServerScorer(options: LlamaServerScorerOptions): (request: ScoreRequest) => Promise<ScoreResult> {
  const post = createLlamaServerPost(options);
  const tokenize = async (content: string, addSpecial: boolean): Promise<number[]> => {
    const { tokens } = await post<{ tokens?: unknown }>("/tokenize", { content, add_special: addSpecial, parse_special: true });
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw new TesseraError("internal_error", `${options.kind}: /tokenize answered no token list`);
    return tokens as number[];
  };
  let eosId: Promise<number> | undefined;
  const eos = (): Promise<number> =>
    (eosId ??= (async () => {
      const url = joinUrl(options.baseURL, "/props");
      let res: Response;
      try {
        res = await options.fetch(url, { headers: options.headers });
      } catch (err) {
        throw errorFromFetchFailure(options.kind, url, err);
      }
      if (!res.ok) throw await errorFromResponse(options.kind, res);
      const props = (await res.json()) as { eos_token?: unknown };
      if (typeof props.eos_token !== "string" || props.eos_token.length === 0) throw new TesseraError("internal_error", `${options.kind}: /props names no eos_token`);
      const ids = await tokenize(props.eos_token, false);
      if (ids.length !== 1) throw new TesseraError("internal_error", `${options.kind}: the eos_token ${JSON.stringify(props.eos_token)} is not one token`);
      return ids[0]!;
    })().catch((error: unknown) => {
      eosId = undefined;
      throw error;
    }));

  const topAfter = createTopAfter({ kind: options.kind, post });
  return async (request) => {
    refuseConstraint(options.kind, request);
    if (request.outputTokens.length > MAX_SCORED_POSITIONS) {
      throw new TesseraError("bad_request", `${options.kind}: ${request.outputTokens.length} tokens to score; at most ${MAX_SCORED_POSITIONS}`);
    }
    const prompt = request.rawPrompt ? await tokenize(request.messages[0]!.content, true) : await options.prompt.promptTokens(toolPromptMessages(request.messages, [], false));
    if (!prompt) throw new TesseraError("unsupported_parameter", `${options.kind}: this server declares no chat template (GET /props), so it cannot score a chat as generation ran it`);
    if (request.promptTokens !== undefined && !sameTokens(request.promptTokens, prompt)) throw new PromptMismatchError(request.promptTokens.length, prompt.length);
    const eosToken = await eos();
    const at = (upTo: number) => topAfter([...prompt, ...request.outputTokens.slice(0, upTo)]);
    const positions: ScoreResult["positions"] = [];
    for (let i = 0; i < request.outputTokens.length; i++) {
      const top = await at(i);
      const token = request.outputTokens[i]!;
      positions.push({ token, ...placeIn(top, token), topMass: Math.min(1, top.reduce((sum, t) => sum + Math.exp(t.logprob), 0)) });
    }
    const last = await at(request.outputTokens.length);
    return { promptTokens: prompt.length, positions, eos: placeIn(last, eosToken) };
  };
}
