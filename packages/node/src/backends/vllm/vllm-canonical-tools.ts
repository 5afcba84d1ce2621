import { type ErrorCode, MAX_PROMPT_TOKEN_IDS, type StreamPart, TesseraError } from "@tessera/protocol";
import { type BackendAdapter, type GenerateRequest, type GenerateResult, collectStream } from "../adapter.js";
import { withGeneration } from "../generation-wrapper.js";
import { errorFromFetchFailure, errorFromResponse, errorPart } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";
import { completionBody } from "../openai-compatible/completion-body.js";
import { mapCompletionChunk } from "../openai-compatible/map-completion-chunk.js";
import { readSseEvents } from "../openai-compatible/read-sse-events.js";
import type { ScoreHttp } from "../openai-compatible/score-http.js";
import { promptTokensRefusal } from "../../prompt/index.js";
import { type BackendLog, canonicalChat, serverGrammar, isConstrainedChat } from "../../constrained/canonical-chat.js";
import { readConstrainedEvents } from "../../constrained/read-constrained-events.js";
import type { OutputKind } from "../../constrained/output-grammar.js";
import { vllmChatPromptIds, vllmTokenize } from "./vllm-prompt-ids.js";

/** How one job runs: on the base adapter (native, or free text on ids), or under Tessera's grammar on ids. */
type Route =
  | { via: "base"; request: GenerateRequest; report?: number[] }
  | { via: "grammar"; request: GenerateRequest; ids: number[]; grammar: string; output: Exclude<OutputKind, "free">; continuation: boolean; report?: number[] };

/**
 * `base` (vLLM's OpenAI-compatible adapter) with tool chats (tools offered, or tool calls/results in the history) and
 * JSON-mode chats run Tessera's one way (constrained/design.md), as on the embedded engine and llama-server:
 * - the chat written by `toolPromptMessages` into ordinary messages, rendered to ids by the server's own template
 *   (`POST /tokenize`, vllm-prompt-ids.ts), reported as the `prompt` part when asked; a job that carries ids runs them;
 * - an answer with callable tools or `response_format`: `POST /v1/completions` on the ids (then the prefix's) with the
 *   one grammar text as `structured_outputs.grammar` (vLLM's structured-output field since `guided_grammar` went; its
 *   xgrammar backend reads GBNF) and `return_token_ids`, read by `readConstrainedEvents` (calls whole, the grammar's
 *   end stops the answer, the request is then aborted). A 400 to it (a vLLM whose grammar backend refuses the text)
 *   sends that job the native way (the chat route with OpenAI's tools / `response_format`), with no prompt ids, and
 *   is logged once;
 * - tool turns without callable tools (`tool_choice: none`): free text on the ids through the base's completion route.
 * vLLM cannot advance a grammar over prompt tokens, so a continuation runs under `serverGrammar`: the text branch
 * of `tool_choice: auto` under `root ::= .*`; a prefix in a call or JSON answer is declined (`unsupported_parameter`).
 * Every other job (plain chats, raw prompts) goes to `base` untouched.
 */
export function withCanonicalTools(base: BackendAdapter, http: ScoreHttp, log: BackendLog): BackendAdapter {
  const { kind } = http;
  const url = joinUrl(http.baseURL, "/v1/completions");
  let refusalLogged = false;

  const route = async (request: GenerateRequest): Promise<Route> => {
    const { reportPromptTokens, ...rest } = request;
    const { sampling } = request;
    if (!isConstrainedChat(request)) return { via: "base", request };
    const chat = await canonicalChat(kind, request);
    let ids = request.promptTokens;
    if (ids !== undefined) {
      const refusal = promptTokensRefusal(ids, { vocabSize: undefined, maxLength: MAX_PROMPT_TOKEN_IDS });
      if (refusal) throw refusal;
    }
    const prefixText = request.assistantPrefix ?? "";
    let prefixTokens = request.assistantPrefixTokens ?? [];
    try {
      ids ??= await vllmChatPromptIds(http, request.model, chat.messages);
      // vLLM takes a prompt of ids only (no trailing text as llama-server does): a prefix known only as text is tokenised.
      if (prefixTokens.length === 0 && prefixText) prefixTokens = await vllmTokenize(http, request.model, prefixText, false);
    } catch (err) {
      // The lookups make the answer canonical, not answered: where one fails (a server without vLLM's /tokenize, an
      // error), the job goes the native way, without ids (given ids are then declined there).
      if (request.signal?.aborted) throw err;
      return { via: "base", request: rest };
    }
    const report = reportPromptTokens && request.promptTokens === undefined ? { report: ids } : {};
    const { tools: _t, tool_choice: _c, parallel_tool_calls: _p, response_format: _f, ...plain } = sampling;
    const onIds: GenerateRequest = { ...rest, messages: chat.messages, sampling: plain, promptTokens: ids, ...(prefixTokens.length ? { assistantPrefixTokens: prefixTokens } : {}) };
    if (chat.output.kind === "free") return { via: "base", request: onIds, ...report };
    const { grammar, continuation } = serverGrammar(kind, chat.output, { logprobs: sampling.logprobs, prefixText, prefixTokens: prefixTokens.length });
    return { via: "grammar", request: onIds, ids: [...ids, ...prefixTokens], grammar, output: chat.output.kind, continuation, ...report };
  };

  async function* stream(request: GenerateRequest): AsyncGenerator<StreamPart> {
    let routed: Route;
    try {
      routed = await route(request);
    } catch (err) {
      if (request.signal?.aborted) {
        yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
        yield { type: "finish", reason: "cancelled" };
        return;
      }
      yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", `${kind}: ${String(err)}`));
      return;
    }
    if (routed.via === "base") {
      if (routed.report) yield { type: "prompt", tokens: routed.report };
      yield* base.doStream(routed.request);
      return;
    }
    const stopServer = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, stopServer.signal]) : stopServer.signal;
    const body = {
      ...completionBody(routed.request, true, { logprobs: false, streamUsage: true }),
      structured_outputs: { grammar: routed.grammar },
      return_token_ids: true,
    };
    let res: Response;
    try {
      try {
        res = await http.fetch(url, { method: "POST", headers: http.headers, body: JSON.stringify(body), signal });
      } catch (err) {
        throw errorFromFetchFailure(kind, url, err);
      }
      if (!res.ok) throw await errorFromResponse(kind, res);
      if (!res.body) throw new TesseraError("internal_error", `${kind}: empty response body`);
    } catch (err) {
      if (request.signal?.aborted) {
        yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
        yield { type: "finish", reason: "cancelled" };
        return;
      }
      if (err instanceof TesseraError && err.code === "bad_request") {
        if (!refusalLogged) {
          refusalLogged = true;
          log("warn", `${kind} at ${http.baseURL} refused Tessera's grammar (${err.message}); tool and JSON chats go its native way, without prompt ids`);
        }
        const { reportPromptTokens: _r, ...native } = request;
        yield* base.doStream(native);
        return;
      }
      yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", `${kind}: ${String(err)}`));
      return;
    }
    if (routed.report) yield { type: "prompt", tokens: routed.report };
    try {
      yield* readConstrainedEvents(kind, readSseEvents(kind, res.body, mapCompletionChunk, true), { output: routed.output, continuation: routed.continuation, promptTokens: routed.ids.length }, request.signal);
    } finally {
      // The grammar's end is found here, not by the server, which would go on writing newlines: stop it.
      stopServer.abort();
    }
  }

  return withGeneration(base, {
    async doGenerate(request): Promise<GenerateResult> {
      if (!isConstrainedChat(request)) return base.doGenerate(request);
      try {
        return await collectStream(stream(request));
      } catch (err) {
        const { code, message } = err as { code?: unknown; message: string };
        throw new TesseraError(typeof code === "string" ? (code as ErrorCode) : "internal_error", message);
      }
    },
    doStream: stream,
  });
}
