import { type ErrorCode, MAX_PROMPT_TOKEN_IDS, type StreamPart, TesseraError } from "@tessera/protocol";
import { type BackendAdapter, type GenerateRequest, type GenerateResult, collectStream } from "../adapter.js";
import { constrainedContinuationError } from "../http/constrained-continuation.js";
import { createOpenAICompatibleAdapter } from "../openai-compatible/openai-compatible-adapter.js";
import type { ScoreHttp } from "../openai-compatible/score-http.js";
import { rawPromptOf, rawPromptRefusal } from "../raw-prompt.js";
import { promptTokensRefusal } from "../../prompt/index.js";
import { type BackendLog, canonicalChat, serverGrammar, isConstrainedChat } from "../../constrained/canonical-chat.js";
import { type ConstrainedReading, readConstrainedEvents } from "../../constrained/read-constrained-events.js";
import { failedOpen, openConstrainedGenerate, streamGenerate } from "./sglang-generate.js";
import { sglangChatPromptIds, sglangTokenize } from "./sglang-prompt-ids.js";
import { createSglangScorer } from "./sglang-score.js";

/**
 * SGLang (`python -m sglang.launch_server`, default `:30000`), with `GET /health`.
 * - Plain answers go through SGLang's native `POST /generate` on prompt ids (sglang-generate.ts), so every
 *   text delta carries its token ids and an SGLang node's answers can be spot-checked (its OpenAI routes refuse
 *   `return_token_ids` on a streamed chat). The ids: the job's canonical `promptTokens` when it carries them; for a
 *   raw prompt, `POST /v1/tokenize` with special tokens (as SGLang's completion route tokenises it); for a chat, the
 *   server's own template read back with `return_prompt_token_ids` (sglang-prompt-ids.ts, SGLang 0.5.13+), reported
 *   as the job's `prompt` part when asked. A continuation appends the prefix's ids (its text tokenised where they are
 *   unknown). Where a lookup fails (an SGLang too old to return prompt ids, one without `/v1/tokenize`, any error), the
 *   request goes by the chat or completion route as before: answered, or refused there, without ids.
 * - Chats with tools, tool turns or `response_format` run Tessera's one way (constrained/design.md; `constrainedPlan`
 *   below): the tool prompt's messages rendered by the server's template, reported and carried like any chat's ids,
 *   the answer on `/generate` under the one grammar (`sampling_params.ebnf`) and read as the embedded engine reads it.
 *   Where SGLang cannot (too old to return prompt ids, or a 400 to the grammar, logged once), the job goes the native
 *   way: `/v1/chat/completions` (the OpenAI-compatible base: tools as sent, `--tool-call-parser`; `response_format`
 *   as OpenAI spells it, `json_object` as the schema `{"type":"object"}`), without ids; given ids are then declined
 *   there (`unsupported_parameter`, `prompt_tokens`), so the coordinator moves the job to a node that runs them.
 * Its error bodies are top-level `{"object":"error","message",…}` or `{"error": {"message"}}`; the shared reader
 * handles both. A raw prompt's `response_format` goes as `sampling_params.json_schema` on /generate.
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
  /** Where the adapter says what an operator should know (a server that refuses Tessera's grammar); default: a process warning. */
  log?: BackendLog;
}

export function createSglangAdapter(options: SglangOptions): BackendAdapter {
  const { scoring, log: logOption, ...rest } = options;
  const log: BackendLog = logOption ?? ((_level, message) => process.emitWarning(message));
  const headers: Record<string, string> = { "content-type": "application/json", ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
  const http: ScoreHttp = { baseURL: options.baseURL, fetch: options.fetch ?? globalThis.fetch, headers, kind: "sglang" };
  const score = scoring ? createSglangScorer({ ...http, eosTokenIds: scoring.eosTokenIds }) : undefined;
  const chat = createOpenAICompatibleAdapter({ ...rest, kind: "sglang", assistantPrefix: "continue-final-message", generationOptions: { jsonObject: "as-schema" }, ...(score ? { score } : {}) });

  /** How a job runs: the chat route (native), `/generate` on ids, or `/generate` on ids under Tessera's grammar. */
  type Plan =
    | { via: "chat" }
    | { via: "generate"; request: GenerateRequest; ids: number[]; report?: number[] }
    | { via: "grammar"; request: GenerateRequest; ids: number[]; grammar: string; reading: ConstrainedReading; report?: number[] };

  /** Prompt ids and the prefix's (its text tokenised where its ids are unknown). */
  const prefixIds = async (request: GenerateRequest): Promise<number[]> => {
    if (request.assistantPrefixTokens?.length) return request.assistantPrefixTokens;
    return request.assistantPrefix ? sglangTokenize(http, request.model, request.assistantPrefix, false) : [];
  };

  /**
   * A tool or JSON chat, Tessera's one way (constrained/design.md): `toolPromptMessages`, rendered by the server's
   * template (`return_prompt_token_ids`) or the job's carried ids, then `/generate` under the one grammar as
   * `sampling_params.ebnf` (free text on the ids for tool turns without callable tools). A continuation runs under
   * `serverGrammar` (the text branch of `tool_choice: auto` only; a call or JSON prefix is declined).
   */
  const constrainedPlan = async (request: GenerateRequest): Promise<Plan> => {
    const chat = await canonicalChat("sglang", request);
    let prompt = request.promptTokens;
    if (prompt !== undefined) {
      const bad = promptTokensRefusal(prompt, { vocabSize: undefined, maxLength: MAX_PROMPT_TOKEN_IDS });
      if (bad) throw bad;
    } else {
      try {
        prompt = await sglangChatPromptIds(http, request.model, chat.messages);
      } catch (err) {
        // An SGLang too old to return prompt ids: the job goes the native way (its chat route), without ids.
        if (request.signal?.aborted) throw err;
        return { via: "chat" };
      }
    }
    const report = request.reportPromptTokens && request.promptTokens === undefined ? { report: prompt } : {};
    const prefix = await prefixIds(request);
    const { tools: _t, tool_choice: _c, parallel_tool_calls: _p, response_format: _f, ...plain } = request.sampling;
    const onIds: GenerateRequest = { ...request, messages: chat.messages, sampling: plain };
    const ids = [...prompt, ...prefix];
    if (chat.output.kind === "free") return { via: "generate", request: onIds, ids, ...report };
    const { grammar, continuation } = serverGrammar("sglang", chat.output, { logprobs: request.sampling.logprobs, prefixText: request.assistantPrefix ?? "", prefixTokens: prefix.length });
    return { via: "grammar", request: onIds, ids, grammar, reading: { output: chat.output.kind, continuation, promptTokens: ids.length }, ...report };
  };

  /** How `request` runs (see above). */
  const plan = async (request: GenerateRequest): Promise<Plan> => {
    if (isConstrainedChat(request)) return constrainedPlan(request);
    const refusal = rawPromptRefusal("sglang", request, { allowResponseFormat: true }) ?? constrainedContinuationError("sglang", request);
    if (refusal) throw refusal;
    if (request.promptTokens !== undefined) {
      const bad = promptTokensRefusal(request.promptTokens, { vocabSize: undefined, maxLength: MAX_PROMPT_TOKEN_IDS });
      if (bad) throw bad;
    } else if (!request.rawPrompt && request.assistantPrefix) {
      // A chat continuation without the first node's ids keeps the chat route (continue_final_message), as before.
      return { via: "chat" };
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
        if (request.reportPromptTokens) report = prompt;
      }
      return { via: "generate", request, ids: [...prompt, ...(await prefixIds(request))], ...(report ? { report } : {}) };
    } catch (err) {
      if (request.signal?.aborted) throw err;
      return { via: "chat" };
    }
  };

  let refusalLogged = false;
  /** The chat route for `request`, which reports no ids. */
  const native = (request: GenerateRequest): AsyncIterable<StreamPart> => {
    const { reportPromptTokens: _unused, ...chatRequest } = request;
    return chat.doStream(chatRequest);
  };

  async function* stream(request: GenerateRequest): AsyncGenerator<StreamPart> {
    let planned: Plan;
    try {
      planned = await plan(request);
    } catch (err) {
      yield* failedOpen(http, request, err);
      return;
    }
    yield* run(request, planned);
  }

  async function* run(request: GenerateRequest, planned: Plan): AsyncGenerator<StreamPart> {
    if (planned.via === "chat") {
      yield* native(request);
      return;
    }
    if (request.signal?.aborted) {
      yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
      yield { type: "finish", reason: "cancelled" };
      return;
    }
    if (planned.via === "generate") {
      yield* streamGenerate(http, planned.request, planned.ids, planned.report);
      return;
    }
    const stopServer = new AbortController();
    try {
      let opened: Awaited<ReturnType<typeof openConstrainedGenerate>>;
      try {
        opened = await openConstrainedGenerate(http, planned.request, planned.ids, planned.grammar, request.signal ? AbortSignal.any([request.signal, stopServer.signal]) : stopServer.signal);
      } catch (err) {
        yield* failedOpen(http, request, err);
        return;
      }
      if ("refused" in opened) {
        if (!refusalLogged) {
          refusalLogged = true;
          log("warn", `sglang at ${options.baseURL} refused Tessera's grammar (${opened.refused.message}); tool and JSON chats go its native way, without prompt ids`);
        }
        stopServer.abort();
        yield* native(request);
        return;
      }
      if (planned.report) yield { type: "prompt", tokens: planned.report };
      yield* readConstrainedEvents("sglang", opened.events, planned.reading, request.signal);
    } finally {
      // The grammar's end is found here, not by the server, which would go on writing newlines: stop it.
      stopServer.abort();
    }
  }

  return {
    kind: "sglang",
    ...(chat.score ? { score: chat.score } : {}),
    health: (signal) => chat.health(signal),
    listModels: (signal) => chat.listModels(signal),
    embed: (request) => chat.embed!(request),

    /** /generate only streams its logprobs per chunk, so a whole answer there is a collected stream. */
    async doGenerate(request: GenerateRequest): Promise<GenerateResult> {
      const planned = await plan(request);
      if (planned.via === "chat") {
        const { reportPromptTokens: _unused, ...chatRequest } = request;
        return chat.doGenerate(chatRequest);
      }
      try {
        return await collectStream(run(request, planned));
      } catch (err) {
        const { code, message } = err as { code?: unknown; message: string };
        throw new TesseraError(typeof code === "string" ? (code as ErrorCode) : "internal_error", message);
      }
    },

    doStream: stream,
  };
}
