/**
 * A running llama.cpp `llama-server` as a verification engine: the third engine of the calibration's honest pairs,
 * and the one that can load ANOTHER CPU's kernels on this machine (the testkit's `llamaServerWithCpuVariant`: e.g. an
 * AVX2-only Haswell's ggml CPU library on an AVX512 CPU), so the thresholds meet cross-CPU differences too.
 *
 * - `score` teaches the tokens one position at a time with the node's llama-server scorer's per-position request
 *   (../backends/llama-server/top-after.ts: `POST /completion` of the prompt ids and the answer so far, `n_predict:
 *   1`, `n_probs: 20`, `cache_prompt: true`, `ignore_eos: true`, and its re-ask for byte-fallback tokens below); rank
 *   TOP_K_SCORED + 1 outside the top 20, with the 20th log-probability, as llama-server-score.ts reports it; EOS judged
 *   after the last token; each top list kept.
 * - `generate` is one `POST /completion` of the prompt ids, `temperature: 0` (llama-server's greedy sampler),
 *   `n_probs` alternatives per token, `cache_prompt: false` (the prompt evaluated afresh in one batch, then one token
 *   at a time, as the embedded engine does), `return_tokens`. Where the server stopped at EOS (`stop_type: "eos"`)
 *   it lists EOS as the last generated token (v0.5.0, measured): it is dropped, as `Generation.tokens` excludes it.
 *
 * Log-probabilities are the model's own (`post_sampling_probs` off: a softmax of the raw logits, whatever the
 * sampler does). One wrinkle of llama-server v0.5.0 (server-context.cpp `process_token`): a token whose text ends in
 * an incomplete UTF-8 character (a byte-fallback token such as `<0xEF>`) gets NO probabilities, and in a generation
 * its entry is never sent:
 * - scoring asks that position again with the sampled token banned (top-after.ts): the ban moves only what is
 *   sampled, never the reported probabilities, which come from the raw logits;
 * - a generation with fewer entries than tokens takes its log-probabilities from this server's own teacher-forced
 *   scores of its tokens, which equal what the generation reports, to the bit, where it reports them (the real-server
 *   test in packages/node/test/backends/llama-server-engine.test.ts).
 *
 * The server does not say its vocabulary size nor, as an id, its EOS token; the caller passes both (from the GGUF it
 * serves), and a generation that stopped on another token than `eosToken` is an error.
 */
import { TesseraError } from "@tessera/protocol";
import { createLlamaServerPost } from "../backends/llama-server/post-json.js";
import { type ProbEntry, createTopAfter, placeIn, topList } from "../backends/llama-server/top-after.js";
import { checkVocabulary, oneAtATime } from "./engine-guards.js";
import { TOP_K_SCORED, type Generation, type GenerateOptions, type PositionScore, type ReferenceScores, type VerificationEngine } from "./types.js";

export interface LlamaServerEngineOptions {
  /** `http://127.0.0.1:<port>` of a llama-server serving one model. */
  baseURL: string;
  /** The model's EOS id and vocabulary size (from its GGUF). */
  eosToken: number;
  vocabSize: number;
  fetch?: typeof globalThis.fetch;
  /** Names the engine in reports (default "llama-server"). */
  kind?: string;
}

interface CompletionAnswer {
  completion_probabilities?: ProbEntry[];
  tokens?: unknown;
  stop_type?: unknown;
}

export function createLlamaServerEngine(options: LlamaServerEngineOptions): VerificationEngine {
  const kind = options.kind ?? "llama-server";
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const headers = { "content-type": "application/json" };

  const post = createLlamaServerPost({ baseURL: options.baseURL, fetch: fetchImpl, headers, kind });

  const topAfter = createTopAfter({ kind, post });

  const scoreTokens = async (prompt: readonly number[], output: readonly number[]): Promise<ReferenceScores> => {
    const positions: PositionScore[] = [];
    for (let i = 0; i < output.length; i++) {
      const top = await topAfter([...prompt, ...output.slice(0, i)]);
      positions.push({ token: output[i]!, ...placeIn(top, output[i]!), top: top.slice(0, TOP_K_SCORED) });
    }
    const last = await topAfter([...prompt, ...output]);
    return { promptTokens: prompt.length, positions, eos: { token: options.eosToken, ...placeIn(last, options.eosToken), top: last.slice(0, TOP_K_SCORED) } };
  };

  const exclusive = oneAtATime();

  const checkTokens = (name: string, tokens: readonly number[]): void => checkVocabulary(name, tokens, options.vocabSize);

  return {
    kind,
    eosToken: options.eosToken,
    vocabSize: options.vocabSize,
    score(prompt, output): Promise<ReferenceScores> {
      return exclusive(async () => {
        if (prompt.length === 0) throw new TesseraError("bad_request", "scoring needs at least one prompt token");
        checkTokens("prompt", prompt);
        checkTokens("output", output);
        return scoreTokens(prompt, output);
      });
    },
    generate(prompt, opts: GenerateOptions): Promise<Generation> {
      return exclusive(async () => {
        if (prompt.length === 0) throw new TesseraError("bad_request", "generation needs at least one prompt token");
        checkTokens("prompt", prompt);
        const k = opts.topLogprobs ?? 5;
        if (k > TOP_K_SCORED) throw new TesseraError("bad_request", `topLogprobs is at most ${TOP_K_SCORED}, got ${k}`);
        const out: Generation = { tokens: [], finishReason: "length", logprobs: [], promptTokens: prompt.length };
        if (opts.maxTokens === 0) return out;
        const answer = (await post("/completion", { prompt: [...prompt], n_predict: opts.maxTokens, temperature: 0, n_probs: k, cache_prompt: false, return_tokens: true, stream: false })) as CompletionAnswer;
        const tokens = answer.tokens;
        if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw new TesseraError("internal_error", `${kind}: /completion answered no token list for return_tokens`);
        const entries = [...(answer.completion_probabilities ?? [])];
        if (answer.stop_type === "eos") {
          if (tokens.at(-1) !== options.eosToken) throw new TesseraError("internal_error", `${kind}: stopped at EOS, but its last token is ${String(tokens.at(-1))}, not ${options.eosToken}`);
          tokens.pop();
          if (entries.at(-1)?.id === options.eosToken) entries.pop();
          out.finishReason = "stop";
        } else if (answer.stop_type !== "limit") {
          throw new TesseraError("internal_error", `${kind}: unexpected stop_type ${JSON.stringify(answer.stop_type)} for a greedy generation without stop words`);
        }
        out.tokens = tokens as number[];
        if (entries.length === tokens.length && entries.every((e, i) => e.id === tokens[i])) {
          out.logprobs = entries.map((e, i) => ({ token: tokens[i] as number, logprob: Math.min(0, e.logprob as number), top: topList(kind, e).slice(0, k) }));
        } else {
          // Entries held back for incomplete UTF-8 characters (file comment): this server's own scores of its tokens.
          const scores = await scoreTokens(prompt, out.tokens);
          out.logprobs = scores.positions.map((p) => ({ token: p.token, logprob: p.logprob, top: p.top.slice(0, k) }));
        }
        return out;
      });
    },
    async close() {
      await exclusive(async () => undefined);
    },
  };
}
