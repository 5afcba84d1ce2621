import { TesseraError } from "@tessera/protocol";

/** Alternatives asked per position: the checks judge ranks up to 20 (trust design, "The checks"). */
export const TOP_SCORED = 20;

/** How many sampled tokens one position may ban before the server is given up on (each is a byte-fallback piece). */
const MAX_BANNED = 8;

/** One entry of `completion_probabilities` as llama-server sends it. */
export interface ProbEntry {
  id?: unknown;
  logprob?: unknown;
  top_logprobs?: Array<{ id?: unknown; logprob?: unknown }>;
}

/** The model's 20 most likely next tokens after a context, most likely first, as llama-server reports them. */
export type TopAfter = (context: readonly number[]) => Promise<Array<{ token: number; logprob: number }>>;

/**
 * The top 20 of the model's own distribution after `context` (token ids), from llama-server: `POST /completion` of the
 * ids with `n_predict: 1`, `n_probs: 20`, `temperature: 0`, `ignore_eos: true` (so the position after an answer's
 * last token can be judged too) and `cache_prompt: true` (the slot keeps the context, so scoring an answer position
 * by position decodes one new token per call). The reported probabilities are a softmax of the raw logits, whatever
 * the sampler does (v0.5.0 `get_token_probabilities`; `post_sampling_probs` off).
 *
 * One wrinkle of v0.5.0 (server-context.cpp `process_token`): when the token it samples ends in an incomplete UTF-8
 * character (a byte-fallback piece such as `<0xEF>`), it sends no probabilities at all. The position is then asked
 * again with that token banned from sampling (`logit_bias: [[id, false]]`): a ban moves what is sampled, never the
 * reported probabilities. `return_tokens` says which token was sampled. Throws TesseraError (`internal_error`) on an
 * answer without probabilities that names no sampled token, or after 8 bans.
 */
export function createTopAfter(options: { kind: string; post: (path: string, body: unknown) => Promise<unknown> }): TopAfter {
  const { kind } = options;
  return async (context) => {
    const banned: number[] = [];
    for (;;) {
      const answer = (await options.post("/completion", {
        prompt: context,
        n_predict: 1,
        n_probs: TOP_SCORED,
        temperature: 0,
        ignore_eos: true,
        cache_prompt: true,
        return_tokens: true,
        ...(banned.length > 0 ? { logit_bias: banned.map((id) => [id, false]) } : {}),
        stream: false,
      })) as { completion_probabilities?: ProbEntry[]; tokens?: unknown };
      const entry = answer.completion_probabilities?.[0];
      if (entry) return topList(kind, entry);
      const sampled = Array.isArray(answer.tokens) ? answer.tokens[0] : undefined;
      if (!Number.isInteger(sampled) || banned.length >= MAX_BANNED) {
        throw new TesseraError("internal_error", `${kind}: /completion answered no top_logprobs for n_probs (sampled ${String(sampled)}${banned.length ? `, banned ${banned.join(", ")}` : ""})`);
      }
      banned.push(sampled as number);
    }
  };
}

/** An entry's alternatives, most likely first, log-probabilities clamped to ≤ 0. Throws TesseraError (`internal_error`). */
export function topList(kind: string, entry: ProbEntry | undefined): Array<{ token: number; logprob: number }> {
  const top = entry?.top_logprobs;
  if (!Array.isArray(top) || top.length === 0) throw new TesseraError("internal_error", `${kind}: /completion answered no top_logprobs for n_probs`);
  return top.map((t) => {
    if (!Number.isInteger(t.id) || typeof t.logprob !== "number") throw new TesseraError("internal_error", `${kind}: a top_logprobs entry without id or logprob`);
    return { token: t.id as number, logprob: Math.min(0, t.logprob) };
  });
}

/**
 * A token's place in a top list: its log-probability and rank (1 = most likely), or, outside the list, the last
 * listed log-probability as its bound and rank 21: all the checks ask (the embedded engine reports the same).
 */
export function placeIn(top: ReadonlyArray<{ token: number; logprob: number }>, token: number): { logprob: number; rank: number } {
  const i = top.findIndex((t) => t.token === token);
  return i >= 0 ? { logprob: top[i]!.logprob, rank: i + 1 } : { logprob: top[top.length - 1]!.logprob, rank: TOP_SCORED + 1 };
}
