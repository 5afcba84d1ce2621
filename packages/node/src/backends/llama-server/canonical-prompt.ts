import { type ChatMessage, type ErrorCode, MAX_PROMPT_TOKEN_IDS, type StreamPart, TesseraError } from "@tessera/protocol";
import { type BackendAdapter, type GenerateRequest, type GenerateResult, collectStream } from "../adapter.js";
import { errorFromFetchFailure, errorFromResponse, errorPart } from "../http/backend-error.js";
import { joinUrl } from "../http/join-url.js";
import { withGeneration } from "../generation-wrapper.js";
import { idPrompt } from "../openai-compatible/completion-body.js";
import type { LlamaServerPrefixReplay } from "./prefix-replay.js";
import type { ConstrainedRun, createLlamaServerConstrainedCompletion } from "./constrained-completion.js";
import { type ChatTemplateSource, assemblePromptTokens, promptTokensRefusal, renderChat } from "../../prompt/index.js";
import { canonicalChat, serverGrammar } from "../../constrained/canonical-chat.js";

type LlamaServerConstrainedCompletion = ReturnType<typeof createLlamaServerConstrainedCompletion>;

/**
 * The canonical prompt on llama-server (backends/design.md "Canonical prompt"): the chat is rendered here, by the one
 * renderer every node uses (node/src/prompt/), from the template the server declares (`GET /props`: `chat_template`,
 * `bos_token`, `eos_token`: the GGUF's own, or llama.cpp's built-in ChatML when the file has none, which the renderer
 * reads as "no template"), tokenised by the server (`POST /tokenize`, `add_special: false`, `parse_special` as the
 * renderer says) with BOS first where the vocabulary adds one, and run as token ids through `/v1/completions`, or
 * `/completion` under a grammar (`prompt: [ids]`; llama.cpp adds nothing to an id prompt). The server's own Jinja
 * never renders a Tessera chat, tools included, so
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

/** How one job runs: as the base adapter takes it, or as canonical ids (free text, or under a grammar). */
type Route =
  | { via: "base"; request: GenerateRequest; report?: number[] }
  | { via: "grammar"; request: GenerateRequest; run: ConstrainedRun; report?: number[] };

/**
 * `adapter` (llama-server's OpenAI-compatible base) with chat jobs run as canonical prompt ids: the job's ids when it
 * carries them (a continuation), else this node's rendering, reported first as a `prompt` part when asked.
 *
 * Every chat goes Tessera's one way (constrained/design.md): tools and tool turns written into ordinary messages
 * (`toolPromptMessages`), rendered by the one renderer; an answer with tools or `response_format` runs under the one
 * grammar text (`outputGrammar`) on `/completion` and is read as the embedded engine reads it
 * (constrained-completion.ts). A chat without either goes to the base's `/v1/completions` on the ids.
 *
 * A continuation's prefix is replayed into the server's slot first (`replay`), as the first node evaluated it. The
 * server cannot advance a grammar over prefix tokens, so a constrained continuation runs only where the rest of the
 * grammar is known: the text branch of `tool_choice: auto` (a prefix not starting with `<`), which continues under
 * `TEXT_BRANCH_REST_GRAMMAR`. A prefix inside a call or a JSON answer is declined (`unsupported_parameter`: the
 * coordinator moves the job to a node that can continue it, such as the embedded engine).
 *
 * Raw prompts, and every job on a server without `/props` and `/tokenize` (not llama.cpp's), go to the base as they
 * are (its chat route takes tools as OpenAI spells them).
 */
export function withCanonicalPrompt(adapter: BackendAdapter, prompt: LlamaServerPrompt, replay: LlamaServerPrefixReplay, constrained: LlamaServerConstrainedCompletion): BackendAdapter {
  const { kind } = adapter;
  const route = async (request: GenerateRequest): Promise<Route> => {
    const { reportPromptTokens, ...rest } = request;
    if (request.rawPrompt) {
      if (request.promptTokens !== undefined) throw new TesseraError("bad_request", `${kind}: prompt_tokens cannot be used with a raw prompt`, { param: "prompt_tokens" });
      return { via: "base", request: rest };
    }
    const { messages, output } = await canonicalChat(kind, request);
    let ids = request.promptTokens;
    if (ids !== undefined) {
      const refusal = promptTokensRefusal(ids, { vocabSize: undefined, maxLength: MAX_PROMPT_TOKEN_IDS });
      if (refusal) throw refusal;
    } else {
      ids = await prompt.promptTokens(messages, request.signal);
      if (!ids) return { via: "base", request: rest };
    }
    const report = reportPromptTokens && request.promptTokens === undefined ? { report: ids } : {};
    const prefix = request.assistantPrefixTokens ?? [];
    if (output.kind === "free") {
      // A continuation: the slot is brought to where the first node stood, so that the join is exact (prefix-replay.ts).
      if (prefix.length > 0) await replay(ids, prefix, request.signal);
      // The tools are written into the messages already (none callable: tool_choice none, or tool turns only).
      const { tools: _t, tool_choice: _c, parallel_tool_calls: _p, ...sampling } = request.sampling;
      return { via: "base", request: { ...rest, messages, sampling, promptTokens: ids }, ...report };
    }
    const { grammar, continuation } = serverGrammar(kind, output, { logprobs: request.sampling.logprobs, prefixText: request.assistantPrefix ?? "", prefixTokens: prefix.length });
    if (prefix.length > 0) await replay(ids, prefix, request.signal);
    return { via: "grammar", request, run: { prompt: idPrompt(ids, request), grammar, output: output.kind, continuation }, ...report };
  };
  return withGeneration(adapter, {
    async doGenerate(request): Promise<GenerateResult> {
      const routed = await route(request);
      if (routed.via === "base") return adapter.doGenerate(routed.request);
      try {
        return await collectStream(constrained(routed.request, routed.run));
      } catch (err) {
        const { code, message } = err as { code?: unknown; message: string };
        throw new TesseraError(typeof code === "string" ? (code as ErrorCode) : "internal_error", message);
      }
    },
    async *doStream(request): AsyncGenerator<StreamPart> {
      let routed: Route;
      try {
        routed = await route(request);
      } catch (err) {
        if (request.signal?.aborted) {
          yield { type: "usage", prompt_tokens: 0, completion_tokens: 0 };
          yield { type: "finish", reason: "cancelled" };
          return;
        }
        yield errorPart(err instanceof TesseraError ? err : new TesseraError("internal_error", String(err)));
        return;
      }
      if (routed.report) yield { type: "prompt", tokens: routed.report };
      yield* routed.via === "base" ? adapter.doStream(routed.request) : constrained(routed.request, routed.run);
    },
  });
}
