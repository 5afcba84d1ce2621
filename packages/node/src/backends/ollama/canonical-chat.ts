import { MAX_PROMPT_TOKEN_IDS, TesseraError } from "@tessera/protocol";
import type { GenerateRequest } from "../adapter.js";
import { promptTokensWithToolsRefusal } from "../http/constrained-continuation.js";
import { hasToolTurns, promptTokensRefusal, renderChat } from "../../prompt/index.js";
import type { ReadModelFile } from "./gguf-metadata.js";
import { type OllamaShowResponse, type OllamaTemplate, isJinjaChatTemplate, modelBlobPath, templateFromShow } from "./show-template.js";

/**
 * The canonical prompt on Ollama (design.md "Canonical prompt"; issue 17 §0). Ollama takes no token ids and has no
 * tokenize endpoint, so an Ollama node carries the canonical prompt as TEXT: the chat rendered by the one renderer
 * every node uses (node/src/prompt/) from the model's own template (show-template.ts: the Jinja `/api/show`
 * reports, else the GGUF blob's `tokenizer.chat_template` where this node can read the file), run through `/api/generate` with `raw: true`. Ollama's runner tokenises a raw prompt as the canonical rule does
 * (BOS first where the vocabulary adds one, special-token text parsed), so the same GGUF gives the same prompt ids
 * as on the embedded engine or llama-server.
 *
 * - Chats with tools, tool turns or `response_format` keep `/api/chat` (Ollama renders tools into its own template
 *   and compiles `format` there); given prompt ids with them are declined (`unsupported_parameter`, `prompt_tokens`:
 *   they are Tessera's canonical rendering of tools, which Ollama does not run; the coordinator moves the job).
 * - A model for which Ollama reports only its own Go template and whose file this node cannot read cannot be rendered
 *   canonically: its chats keep `/api/chat`, and a continuation that carries prompt ids is refused
 *   (`unsupported_parameter`, `prompt_tokens`: the coordinator moves the job to another node) rather than run under
 *   another prompt.
 * - A file with no template gets the renderer's fallback text, tokenised canonically WITHOUT special-token text
 *   parsed; Ollama's raw mode parses it, so a fallback text holding a control token's text is refused
 *   (`unsupported_parameter`, `messages`) rather than run as another prompt.
 * - Given prompt ids (a continuation, `job.assign` `prompt_tokens`) are checked (non-empty, within the vocabulary when
 *   `/api/show` lists it) and honoured by running this node's canonical text of the same messages, the text the first
 *   node tokenised into those ids; the continuation prefix follows as text, as for raw prompts.
 */
export interface OllamaCanonicalChatOptions {
  /**
   * `POST /api/show {model, verbose}`; throws TesseraError (404 → `model_not_found`). Asked without `verbose` first:
   * the full vocabulary (and merges: megabytes for a 150k-token BPE model) is fetched only for a Jinja `template`,
   * whose BOS/EOS text it holds; a Go template needs only the Modelfile.
   */
  show(model: string, verbose: boolean, signal?: AbortSignal): Promise<OllamaShowResponse>;
  /** Reads the GGUF blob `/api/show`'s Modelfile names (gguf-metadata.ts); undefined when it cannot be read here. */
  readModelFile: ReadModelFile;
}

export interface OllamaCanonicalChat {
  /**
   * The exact raw text to run for a chat request (the canonical prompt, then the continuation prefix), or undefined
   * when it goes by `/api/chat`. Throws TesseraError: `unsupported_parameter` for a prompt this Ollama cannot run
   * exactly (another node may: ids with tools, tool turns or response_format among them), `bad_request` for ids that
   * are not this model's, ids with a raw prompt, or a template that does not parse or refuses the messages.
   */
  rawText(request: GenerateRequest): Promise<string | undefined>;
  /** Forget what `/api/show` said about a model (after a pull or delete replaced or removed it). */
  forget(model: string): void;
}

/** Chats the canonical path runs: not raw, no tools, tool turns or response_format (those keep `/api/chat`). */
export function canonicalChatApplies(request: GenerateRequest): boolean {
  return !request.rawPrompt && !request.sampling.tools?.length && !request.sampling.response_format && !hasToolTurns(request.messages);
}

export function createOllamaCanonicalChat(options: OllamaCanonicalChatOptions): OllamaCanonicalChat {
  /** Per model name; a failed read is forgotten so the next request asks again. */
  const templates = new Map<string, Promise<OllamaTemplate>>();
  const templateOf = (model: string, signal?: AbortSignal): Promise<OllamaTemplate> => {
    let entry = templates.get(model);
    if (!entry) {
      entry = (async () => {
        const brief = await options.show(model, false, signal);
        if (typeof brief.template === "string" && isJinjaChatTemplate(brief.template)) return templateFromShow(await options.show(model, true, signal));
        const path = modelBlobPath(brief.modelfile);
        return templateFromShow(brief, path !== undefined ? await options.readModelFile(path) : undefined);
      })();
      entry.catch(() => templates.delete(model));
      templates.set(model, entry);
    }
    return entry;
  };
  return {
    async rawText(request) {
      const ids = request.promptTokens;
      if (!canonicalChatApplies(request)) {
        if (ids !== undefined && request.rawPrompt) throw new TesseraError("bad_request", "ollama: prompt_tokens cannot be used with a raw prompt", { param: "prompt_tokens" });
        const declined = promptTokensWithToolsRefusal("ollama", request);
        if (declined) throw declined;
        return undefined;
      }
      const template = await templateOf(request.model, request.signal);
      if (template.kind === "ollama-template") {
        if (ids !== undefined) {
          // unsupported_parameter before any token: the coordinator moves the job to another node, nobody's offence.
          throw new TesseraError("unsupported_parameter", `ollama: cannot run this job's canonical prompt (prompt_tokens): ${template.reason}`, { param: "prompt_tokens" });
        }
        return undefined;
      }
      if (ids !== undefined) {
        const refusal = promptTokensRefusal(ids, { vocabSize: template.vocabSize, maxLength: MAX_PROMPT_TOKEN_IDS });
        if (refusal) throw refusal;
      }
      const rendered = renderChat(template.source, request.messages);
      if (!rendered.parseSpecial) {
        const special = template.specialTexts.find((text) => rendered.text.includes(text));
        if (special !== undefined) {
          throw new TesseraError(
            "unsupported_parameter",
            `ollama: this model has no chat template and the messages hold the special-token text ${JSON.stringify(special)}, which Ollama's raw mode would read as that token (the canonical prompt reads it as text)`,
            { param: "messages" },
          );
        }
      }
      return rendered.text + (request.assistantPrefix ?? "");
    },
    forget(model) {
      templates.delete(model);
    },
  };
}
