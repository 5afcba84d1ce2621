import { type ChatMessage, MAX_PROMPT_TOKEN_IDS, type StreamPart, TesseraError } from "@tessera/protocol";
import type { BackendAdapter, GenerateRequest, GenerateResult } from "../adapter.js";
import { errorFromFetchFailure, errorFromResponse, errorPart } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";
import { withGeneration } from "../generation-wrapper.js";
import type { LlamaServerPrefixReplay } from "./prefix-replay.js";
import { type ChatTemplateSource, assemblePromptTokens, hasToolTurns, promptTokensRefusal, renderChat } from "../../prompt/index.js";

/**
 * The canonical prompt on llama-server (backends/design.md "Canonical prompt"): the chat is rendered here, by the one
 * renderer every node uses (node/src/prompt/), from the template the server declares (`GET /props`: `chat_template`,
 * `bos_token`, `eos_token`: the GGUF's own, or llama.cpp's built-in ChatML when the file has none, which the renderer
 * reads as "no template"), tokenised by the server (`POST /tokenize`, `add_special: false`, `parse_special` as the
 * renderer says) with BOS first where the vocabulary adds one, and run as token ids through `/v1/completions`
 * (`prompt: [ids]`; llama.cpp adds nothing to an id prompt). The server's own Jinja never renders a Tessera chat, so
 * the same GGUF gives the same prompt ids here and on the embedded engine.
 *
 * Whether the vocabulary adds BOS is not in `/props`: `/tokenize` of the empty text with `add_special: true` answers
 * `[bos]` exactly when it does (llama.cpp `llama_vocab_get_add_bos`, the rule the embedded engine reads too).
 */
export interface LlamaServerPromptOptions {
  baseURL: string;
  fetch: typeof globalThis.fetch;
  headers: Record<string, string>;
  kind: string;
}

export interface LlamaServerPrompt {
  /**
   * The canonical prompt ids of `messages` for the model this server serves; undefined when the server has no
   * `/props` or `/tokenize` (HTTP 404: not llama.cpp's server, e.g. a test fake), which then renders the chat itself
   * as before and reports no ids. Throws TesseraError.
   */
  promptTokens(messages: readonly ChatMessage[], signal?: AbortSignal): Promise<number[] | undefined>;
}

interface ServerVocabulary {
  source: ChatTemplateSource;
  bos: { id: number | undefined; add: boolean };
}

export function createLlamaServerPrompt(options: LlamaServerPromptOptions): LlamaServerPrompt {
  const { kind } = options;
  const call = async <T>(path: string, body: unknown | undefined, signal?: AbortSignal): Promise<T> => {
    const url = joinUrl(options.baseURL, path);
    let res: Response;
    try {
      res = await options.fetch(url, body === undefined ? { headers: options.headers, signal } : { method: "POST", headers: options.headers, body: JSON.stringify(body), signal });
    } catch (err) {
      throw errorFromFetchFailure(kind, url, err);
    }
    if (!res.ok) throw await errorFromResponse(kind, res);
    return (await res.json()) as T;
  };
  const tokenize = async (content: string, addSpecial: boolean, parseSpecial: boolean, signal?: AbortSignal): Promise<number[]> => {
    const { tokens } = await call<{ tokens?: unknown }>("/tokenize", { content, add_special: addSpecial, parse_special: parseSpecial }, signal);
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw new TesseraError("internal_error", `${kind}: /tokenize answered no token list`);
    return tokens as number[];
  };
  /** Read once per adapter (a server serves one model); forgotten on failure, so a restarted server is read again. */
  let vocabulary: Promise<ServerVocabulary | undefined> | undefined;
  const readVocabulary = (signal?: AbortSignal): Promise<ServerVocabulary | undefined> =>
    (vocabulary ??= (async () => {
      const props = await call<{ chat_template?: unknown; bos_token?: unknown; eos_token?: unknown }>("/props", undefined, signal);
      const bosToken = typeof props.bos_token === "string" ? props.bos_token : "";
      const eosToken = typeof props.eos_token === "string" ? props.eos_token : "";
      const probe = await tokenize("", true, true, signal);
      const bosIds = bosToken.length > 0 ? await tokenize(bosToken, false, true, signal) : [];
      const bosId = bosIds.length === 1 ? bosIds[0] : undefined;
      const add = bosId !== undefined && probe[0] === bosId;
      return {
        source: { template: typeof props.chat_template === "string" ? props.chat_template : undefined, bosToken, eosToken, addBos: add },
        bos: { id: bosId, add },
      };
    })().catch((error: unknown) => {
      // No such endpoint (these take no model name, so 404 is never "unknown model"): remembered, never asked again.
      if (error instanceof TesseraError && error.code === "model_not_found") return undefined;
      vocabulary = undefined;
      throw error;
    }));
  return {
    async promptTokens(messages, signal) {
      const vocab = await readVocabulary(signal);
      if (!vocab) return undefined;
      const { source, bos } = vocab;
      const rendered = renderChat(source, messages);
      return assemblePromptTokens(bos, await tokenize(rendered.text, false, rendered.parseSpecial, signal));
    },
  };
}

/**
 * Chat jobs the canonical path runs: not raw (the text is the prompt), no tools or tool turns (the chat route's:
 * llama-server offers tools through its own template). JSON mode runs here too, as the prompt ids and llama-server's
 * top-level `json_schema` (completion-body.ts), so that it does not depend on llama.cpp recognising the template.
 */
function canonicalApplies(request: GenerateRequest): boolean {
  return !request.rawPrompt && !request.sampling.tools?.length && !hasToolTurns(request.messages);
}

/**
 * `adapter` (llama-server's OpenAI-compatible base) with chat jobs run as canonical prompt ids: the job's ids when it
 * carries them (a continuation), else this node's rendering, reported first as a `prompt` part when asked. JSON mode
 * runs this node's rendering and reports nothing. Ids on a job that is not an ordinary chat (tools, response_format,
 * raw) are refused, never ignored. A continuation's prefix is
 * replayed into the server's slot first (`replay`), as the first node evaluated it.
 */
export function withCanonicalPrompt(adapter: BackendAdapter, prompt: LlamaServerPrompt, replay: LlamaServerPrefixReplay): BackendAdapter {
  const prepare = async (request: GenerateRequest): Promise<{ request: GenerateRequest; report?: number[] }> => {
    if (!canonicalApplies(request) || request.sampling.response_format) {
      if (request.promptTokens !== undefined) {
        throw new TesseraError("bad_request", `${adapter.kind}: prompt_tokens cannot be used with tools, response_format or a raw prompt`, { param: "prompt_tokens" });
      }
      if (!canonicalApplies(request)) return { request };
      // JSON mode: this node's canonical rendering, never reported (a JSON answer's ids are not carried or checked).
      const { reportPromptTokens: _, ...plain } = request;
      const ids = await prompt.promptTokens(request.messages, request.signal);
      return { request: ids ? { ...plain, promptTokens: ids } : plain };
    }
    const { reportPromptTokens, ...rest } = request;
    let ids = request.promptTokens;
    if (ids !== undefined) {
      const refusal = promptTokensRefusal(ids, { vocabSize: undefined, maxLength: MAX_PROMPT_TOKEN_IDS });
      if (refusal) throw refusal;
    } else {
      ids = await prompt.promptTokens(request.messages, request.signal);
      if (!ids) return { request: rest };
    }
    // A continuation: the slot is brought to where the first node stood, so that the join is exact (prefix-replay.ts).
    if (request.assistantPrefixTokens?.length) await replay(ids, request.assistantPrefixTokens, request.signal);
    return { request: { ...rest, promptTokens: ids }, ...(reportPromptTokens && request.promptTokens === undefined ? { report: ids } : {}) };
  };
  return withGeneration(adapter, {
    async doGenerate(request): Promise<GenerateResult> {
      return adapter.doGenerate((await prepare(request)).request);
    },
    async *doStream(request): AsyncGenerator<StreamPart> {
      let prepared: Awaited<ReturnType<typeof prepare>>;
      try {
        prepared = await prepare(request);
      } catch (err) {
        if (request.signal?.aborted) {
          yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
          yield { type: "finish", reason: "cancelled" };
          return;
        }
        yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", String(err)));
        return;
      }
      if (prepared.report) yield { type: "prompt", tokens: prepared.report };
      yield* adapter.doStream(prepared.request);
    },
  });
}
