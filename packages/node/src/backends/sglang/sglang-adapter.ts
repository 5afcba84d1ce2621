import { type ErrorCode, MAX_PROMPT_TOKEN_IDS, type StreamPart, TesseraError } from "@tessera/protocol";
import { type BackendAdapter, type GenerateRequest, type GenerateResult, collectStream } from "../adapter.js";
import { errorPart } from "../http/backend-error.js";
import { constrainedContinuationError, promptTokensWithToolsRefusal } from "../http/constrained-continuation.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";
import type { ScoreHttp } from "../openai-compatible/score-http.js";
import { rawPromptOf, rawPromptRefusal } from "../raw-prompt.js";
import { hasToolTurns, promptTokensRefusal } from "../../prompt/index.js";
import { streamGenerate } from "./sglang-generate.js";
import { sglangChatPromptIds, sglangTokenize } from "./sglang-prompt-ids.js";
import { createSglangScorer } from "./sglang-score.js";

/**
 * SGLang (`python -m sglang.launch_server`, default `:30000`), with `GET /health`.
 * - Answers without tools go through SGLang's native `POST /generate` on prompt ids (sglang-generate.ts), so every
 *   text delta carries its token ids and an SGLang node's answers can be spot-checked (its OpenAI routes refuse
 *   `return_token_ids` on a streamed chat). The ids: the job's canonical `promptTokens` when it carries them; for a
 *   raw prompt, `POST /v1/tokenize` with special tokens (as SGLang's completion route tokenises it); for a chat, the
 *   server's own template read back with `return_prompt_token_ids` (sglang-prompt-ids.ts, SGLang 0.5.13+), reported
 *   as the job's `prompt` part when asked. A continuation appends the prefix's ids (its text tokenised where they are
 *   unknown). Where a lookup fails (an SGLang too old to return prompt ids, one without `/v1/tokenize`, any error), the
 *   request goes by the chat or completion route as before: answered, or refused there, without ids.
 * - Chats with tools or tool turns go through `/v1/chat/completions` (the OpenAI-compatible base: tools as sent,
 *   `--tool-call-parser`; `continue_final_message` for prefixes; usage; `abort` → cancelled); their answers are never
 *   checked. No ids are reported for them or for JSON mode, and given ids with tools, tool turns or `response_format`
 *   are declined (`unsupported_parameter`, `prompt_tokens`): they are Tessera's canonical rendering of tools and JSON
 *   mode, which SGLang does not run, so the coordinator moves the job to a node that does.
 * Its error bodies are top-level `{"object":"error","message",…}` or `{"error": {"message"}}`; the shared reader
 * handles both. `response_format` goes as `sampling_params.json_schema` on /generate, as OpenAI spells it on the chat
 * route (`json_object` as the schema `{"type":"object"}` on both).
 * With `scoring` (the operator's `reference_scoring`) it scores given tokens for spot checks through
 * `input_token_logprobs` (sglang-score.ts) and announces its models with `scoring: true`; without it, never.
 */
export interface SglangOptions {
  baseURL: string;
  fetch?: typeof globalThis.fetch;
  apiKey?: string;
  /** Models served as embedding models (`--is-embedding`): announced for `/v1/embeddings` only. */
  embeddingModels?: readonly string[];
  /** Serve as a spot-check reference (sglang-score.ts); SGLang names no EOS ids itself, so they are required here. */
  scoring?: { eosTokenIds: readonly number[] };
}

export function createSglangAdapter(options: SglangOptions): BackendAdapter {
  const { scoring, ...rest } = options;
  const headers: Record<string, string> = { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
  const http: ScoreHttp = { baseURL: options.baseURL, fetch: options.fetch ?? globalThis.fetch, headers, kind: "sglang" };
  const score = scoring ? createSglangScorer({ ...http, eosTokenIds: scoring.eosTokenIds }) : undefined;
  const chat = createOpenAICompatibleAdapter({ ...rest, kind: "sglang", assistantPrefix: "continue-final-message", generationOptions: { jsonObject: "as-schema" }, ...(score ? { score } : {}) });

  /** The ids /generate runs for `request` (and the prompt ids to report), or undefined for the chat route. */
  const plan = async (request: GenerateRequest): Promise<{ ids: number[]; report?: number[] } | undefined> => {
    const declined = promptTokensWithToolsRefusal("sglang", request);
    if (declined) throw declined;
    if (request.sampling.tools?.length || hasToolTurns(request.messages)) return undefined;
    const refusal = rawPromptRefusal("sglang", request, { allowResponseFormat: true }) ?? constrainedContinuationError("sglang", request);
    if (refusal) throw refusal;
    if (request.promptTokens !== undefined) {
      const bad = promptTokensRefusal(request.promptTokens, { vocabSize: undefined, maxLength: MAX_PROMPT_TOKEN_IDS });
      if (bad) throw bad;
    } else if (!request.rawPrompt && request.assistantPrefix) {
      // A chat continuation without the first node's ids keeps the chat route (continue_final_message), as before.
      return undefined;
    }
    // The lookups are what make the answer checkable, not what answers it: where one fails (an SGLang too old to
    // return prompt ids or without /v1/tokenize, a model it does not serve, an error), the request goes the way it
    // went before (chat or completion route) and is answered, or refused, there, without ids.
    try {
      let prompt: number[];
      let report: number[] | undefined;
      if (request.promptTokens !== undefined) prompt = request.promptTokens;
      else if (request.rawPrompt) prompt = await sglangTokenize(http, request.model, rawPromptOf(request), true);
      else {
        prompt = await sglangChatPromptIds(http, request.model, request.messages);
        // Not for JSON mode: SGLang writes it its own way, so its ids are no canonical prompt to carry (see above).
        if (request.reportPromptTokens && !request.sampling.response_format) report = prompt;
      }
      let prefix: number[] = [];
      if (request.assistantPrefixTokens?.length) prefix = request.assistantPrefixTokens;
      else if (request.assistantPrefix) prefix = await sglangTokenize(http, request.model, request.assistantPrefix, false);
      return { ids: [...prompt, ...prefix], ...(report ? { report } : {}) };
    } catch (err) {
      if (request.signal?.aborted) throw err;
      return undefined;
    }
  };

  return {
    kind: "sglang",
    ...(chat.score ? { score: chat.score } : {}),
    health: (signal) => chat.health(signal),
    listModels: (signal) => chat.listModels(signal),
    embed: (request) => chat.embed!(request),

    /** /generate only streams its logprobs per chunk, so a whole answer there is a collected stream. */
    async doGenerate(request: GenerateRequest): Promise<GenerateResult> {
      const planned = await plan(request);
      if (!planned) {
        const { reportPromptTokens: _unused, ...chatRequest } = request;
        return chat.doGenerate(chatRequest);
      }
      try {
        return await collectStream(streamGenerate(http, request, planned.ids));
      } catch (err) {
        const { code, message } = err as { code?: unknown; message: string };
        throw new TesseraError(typeof code === "string" ? (code as ErrorCode) : "internal_error", message);
      }
    },

    async *doStream(request: GenerateRequest): AsyncGenerator<StreamPart> {
      let planned: Awaited<ReturnType<typeof plan>>;
      try {
        planned = await plan(request);
      } catch (err) {
        if (request.signal?.aborted) {
          yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
          yield { type: "finish", reason: "cancelled" };
          return;
        }
        yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", `sglang: ${String(err)}`));
        return;
      }
      if (!planned) {
        const { reportPromptTokens: _unused, ...chatRequest } = request;
        yield* chat.doStream(chatRequest);
        return;
      }
      if (request.signal?.aborted) {
        yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
        yield { type: "finish", reason: "cancelled" };
        return;
      }
      yield* streamGenerate(http, request, planned.ids, planned.report);
    },
  };
}
