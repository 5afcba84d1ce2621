/**
 * A running llama.cpp `llama-server` as a verification engine: the third engine of the calibration's honest pairs,
 * and the one that can load ANOTHER CPU's kernels on this machine (the testkit's `llamaServerWithCpuVariant`: e.g. an
 * AVX2-only Haswell's ggml CPU library on an AVX512 CPU), so the thresholds meet cross-CPU differences too.
 *
 * - `score` is the node's own llama-server scorer (../backends/llama-server/llama-server-score.ts), run on the given
 *   prompt ids: one `POST /completion` per position (`n_predict: 1`, `n_probs: 20`, `cache_prompt: true`,
 *   `ignore_eos: true`), rank TOP_K_SCORED + 1 outside the top 20, EOS judged after the last token. That scorer
 *   reports no top lists, so each answer's `top_logprobs` are read as the responses go by (the engine runs one job
 *   at a time, so the i-th `/completion` is position i).
 * - `generate` is one `POST /completion` of the prompt ids, `temperature: 0` (llama-server's greedy sampler),
 *   `n_probs` alternatives per token (the model's own distribution before sampling: `post_sampling_probs` is off),
 *   `cache_prompt: false` (the prompt evaluated afresh in one batch, then one token at a time, as the embedded engine
 *   does). Where the server stopped at EOS (`stop_type: "eos"`) it lists the EOS token as the last generated token
 *   (v0.5.0, measured): it is dropped, as `Generation.tokens` excludes it.
 *
 * The server does not say its vocabulary size nor, as an id, its EOS token; the caller passes both (from the GGUF it
 * serves), and a generation that stopped on another token than `eosToken` is an error.
 */
import { TesseraError } from "@tessera/protocol";
import { errorFromFetchFailure, errorFromResponse } from "../backends/http/backend-error.js";
import { joinUrl } from "../backends/http/join-url.js";
import { createLlamaServerScorer } from "../backends/llama-server/llama-server-score.js";
import { TOP_K_SCORED, type Generation, type GenerateOptions, type ReferenceScores, type TokenLogprob, type VerificationEngine } from "./types.js";

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

interface ProbEntry {
  id?: unknown;
  logprob?: unknown;
  top_logprobs?: Array<{ id?: unknown; logprob?: unknown }>;
}

interface CompletionAnswer {
  completion_probabilities?: ProbEntry[];
  stop_type?: unknown;
}

function topList(kind: string, entry: ProbEntry | undefined): TokenLogprob[] {
  const top = entry?.top_logprobs;
  if (!Array.isArray(top) || top.length === 0) throw new TesseraError("internal_error", `${kind}: /completion answered no top_logprobs for n_probs`);
  return top.map((t) => {
    if (!Number.isInteger(t.id) || typeof t.logprob !== "number") throw new TesseraError("internal_error", `${kind}: a top_logprobs entry without id or logprob`);
    return { token: t.id as number, logprob: Math.min(0, t.logprob) };
  });
}

export function createLlamaServerEngine(options: LlamaServerEngineOptions): VerificationEngine {
  const kind = options.kind ?? "llama-server";
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const headers = { "content-type": "application/json" };
  const completionURL = joinUrl(options.baseURL, "/completion");

  // The top lists of the scorer's /completion answers, in order (see the file comment).
  let tops: TokenLogprob[][] = [];
  const tap: typeof globalThis.fetch = async (input, init) => {
    const res = await fetchImpl(input, init);
    if (res.ok && String(input instanceof Request ? input.url : input) === completionURL) {
      const answer = (await res.clone().json()) as CompletionAnswer;
      tops.push(topList(kind, answer.completion_probabilities?.[0]));
    }
    return res;
  };
  let promptIds: readonly number[] = [];
  const scorer = createLlamaServerScorer({ baseURL: options.baseURL, fetch: tap, headers, kind, prompt: { promptTokens: async () => [...promptIds] } });

  let tail: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  }

  function checkTokens(name: string, tokens: readonly number[]): void {
    for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= options.vocabSize) throw new TesseraError("bad_request", `${name} token ${t} is outside the vocabulary (0..${options.vocabSize - 1})`);
  }

  return {
    kind,
    eosToken: options.eosToken,
    vocabSize: options.vocabSize,
    score(prompt, output): Promise<ReferenceScores> {
      return exclusive(async () => {
        if (prompt.length === 0) throw new TesseraError("bad_request", "scoring needs at least one prompt token");
        checkTokens("prompt", prompt);
        checkTokens("output", output);
        promptIds = prompt;
        tops = [];
        const result = await scorer({ model: "", messages: [], outputTokens: [...output] });
        if (tops.length !== output.length + 1) throw new TesseraError("internal_error", `${kind}: ${tops.length} top lists for ${output.length + 1} scored positions`);
        return {
          promptTokens: result.promptTokens,
          positions: result.positions.map((p, i) => ({ token: p.token, logprob: p.logprob, rank: p.rank, top: tops[i]!.slice(0, TOP_K_SCORED) })),
          eos: { token: options.eosToken, ...result.eos },
        };
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
        const body = { prompt: [...prompt], n_predict: opts.maxTokens, temperature: 0, n_probs: k, cache_prompt: false, stream: false };
        let res: Response;
        try {
          res = await fetchImpl(completionURL, { method: "POST", headers, body: JSON.stringify(body) });
        } catch (err) {
          throw errorFromFetchFailure(kind, completionURL, err);
        }
        if (!res.ok) throw await errorFromResponse(kind, res);
        const answer = (await res.json()) as CompletionAnswer;
        const entries = answer.completion_probabilities ?? [];
        if (answer.stop_type === "eos") {
          const last = entries.pop();
          if (last?.id !== options.eosToken) throw new TesseraError("internal_error", `${kind}: stopped at EOS, but its last token is ${String(last?.id)}, not ${options.eosToken}`);
          out.finishReason = "stop";
        } else if (answer.stop_type !== "limit") {
          throw new TesseraError("internal_error", `${kind}: unexpected stop_type ${JSON.stringify(answer.stop_type)} for a greedy generation without stop words`);
        }
        for (const entry of entries) {
          const top = topList(kind, entry);
          if (!Number.isInteger(entry.id) || typeof entry.logprob !== "number") throw new TesseraError("internal_error", `${kind}: a completion_probabilities entry without id or logprob`);
          out.tokens.push(entry.id as number);
          out.logprobs.push({ token: entry.id as number, logprob: Math.min(0, entry.logprob), top: top.slice(0, k) });
        }
        return out;
      });
    },
    async close() {
      await exclusive(async () => undefined);
    },
  };
}
