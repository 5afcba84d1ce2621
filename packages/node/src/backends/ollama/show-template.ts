import { type ChatTemplateSource, hasOwnTemplate } from "../../prompt/index.js";

/**
 * Where an Ollama node finds a model's canonical chat template (design.md "Canonical prompt"). `POST /api/show
 * {model, verbose}` answers, at Ollama's wire format (server/routes.go `GetModelInfo`):
 * - `template`: the template Ollama renders `/api/chat` with. Classic Ollama reports its own Go template here
 *   (`{{ if .System }}…{{ range .Messages }}…`: hand-written for ollama.com models, converted from the GGUF's Jinja
 *   on import otherwise, `{{ .Prompt }}` for a file with none). Builds whose native chat mode runs the GGUF's own
 *   template report that Jinja source (`tokenizer.chat_template`) here instead.
 * - `model_info`: the GGUF metadata, always WITHOUT `tokenizer.chat_template` (Ollama deletes it) and, unless
 *   `verbose`, with every array longer than 5 emptied, the vocabulary (`tokenizer.ggml.tokens`) included. The BOS/EOS
 *   text comes from that vocabulary at `tokenizer.ggml.bos_token_id` / `eos_token_id`, hence `verbose: true`.
 * - `modelfile`: its `FROM` line names the GGUF blob (`…/models/blobs/sha256-<hex>`). Where this node can read that
 *   file (Ollama on the same host, not in a container), its own `tokenizer.chat_template` is read from it
 *   (gguf-metadata.ts): the template the embedded engine and llama-server render for the same file.
 *
 * Only a Jinja template (or a file known to have none, which gets the renderer's documented fallback) is canonical:
 * Ollama's Go templates are Ollama's own renderings, which are what issue 17 §0 replaces. So when `template` is a Go
 * template and the file cannot be read, the answer is `ollama-template`, with the reason.
 */
export interface OllamaShowResponse {
  template?: unknown;
  modelfile?: unknown;
  model_info?: Record<string, unknown>;
}

/** GGUF metadata as flat keys (`tokenizer.ggml.tokens`), as `model_info` spells them and gguf-metadata.ts reads them. */
export type GgufKeys = Record<string, unknown>;

export type OllamaTemplate =
  | {
      /** `jinja`: the model's own template; `fallback`: a file with none (the renderer's documented fallback). */
      kind: "jinja" | "fallback";
      /** Where it was read: `/api/show`'s `template`, or the GGUF blob itself. */
      from: "api-show" | "gguf-file";
      source: ChatTemplateSource;
      /** The vocabulary's length where the metadata lists it: the range given prompt ids must fall in. */
      vocabSize: number | undefined;
      /**
       * Text of the control and unknown tokens. Ollama tokenises a raw prompt with special-token text parsed; the
       * fallback prompt is tokenised with it NOT parsed (render-chat.ts), so a fallback text holding one of these
       * cannot be run canonically on Ollama (canonical-chat.ts refuses it).
       */
      specialTexts: string[];
    }
  | { kind: "ollama-template"; reason: string };

/**
 * Go-template actions (text/template): `{{ .Field }}`, `{{ $var }}`, `{{ if … }}`, `{{ range … }}`, `{{ end }}`.
 * None of them is valid Jinja (Jinja has no leading-dot names, `$` names, or `{{ if }}` expressions), so one of them
 * marks Ollama's own template.
 */
const GO_ACTION = /\{\{-?\s*(?:\.|\$|(?:if|range|with|else|end|template|define|block)\b)/;

/** A Jinja chat template: Jinja statements (`{% … %}`) and no Go-template action. */
export function isJinjaChatTemplate(template: string): boolean {
  return template.includes("{%") && !GO_ACTION.test(template);
}

/** The GGUF blob a Modelfile's `FROM` line names, when it is one (`…/blobs/sha256-<64 hex>`); nothing else is read. */
export function modelBlobPath(modelfile: unknown): string | undefined {
  if (typeof modelfile !== "string") return undefined;
  const from = /^FROM\s+(.+?)\s*$/m.exec(modelfile)?.[1];
  return from !== undefined && /[\\/]blobs[\\/]sha256[-:][0-9a-f]{64}$/.test(from) ? from : undefined;
}

function tokenText(info: GgufKeys, key: string): string {
  const id = info[key];
  const tokens = info["tokenizer.ggml.tokens"];
  if (typeof id !== "number" || !Array.isArray(tokens)) return "";
  const text: unknown = tokens[id];
  return typeof text === "string" ? text : "";
}

/**
 * Whether the vocabulary adds BOS (llama.cpp `llama_vocab_get_add_bos`, the rule Ollama's runner tokenises a raw prompt
 * by): `tokenizer.ggml.add_bos_token` when the file sets it, else llama.cpp's default for the tokenizer model (SPM
 * `llama` and WPM `bert` add one; BPE `gpt2` and the others do not).
 */
function addsBos(info: GgufKeys): boolean {
  const explicit = info["tokenizer.ggml.add_bos_token"];
  if (typeof explicit === "boolean") return explicit;
  const model = info["tokenizer.ggml.model"];
  return model === "llama" || model === "bert";
}

/** llama.cpp's token types 2 (unknown) and 3 (control): what parse_special reads as a token and plain tokenising does not. */
function specialTexts(info: GgufKeys): string[] {
  const tokens = info["tokenizer.ggml.tokens"];
  const types = info["tokenizer.ggml.token_type"];
  if (!Array.isArray(tokens) || !Array.isArray(types)) return [];
  const out: string[] = [];
  types.forEach((type, i) => {
    const text: unknown = tokens[i];
    if ((type === 2 || type === 3) && typeof text === "string" && text.length > 0) out.push(text);
  });
  return out;
}

function fromMetadata(template: string | undefined, from: "api-show" | "gguf-file", info: GgufKeys): OllamaTemplate {
  const tokens = info["tokenizer.ggml.tokens"];
  return {
    kind: hasOwnTemplate(template) ? "jinja" : "fallback",
    from,
    source: { template, bosToken: tokenText(info, "tokenizer.ggml.bos_token_id"), eosToken: tokenText(info, "tokenizer.ggml.eos_token_id"), addBos: addsBos(info) },
    vocabSize: Array.isArray(tokens) && tokens.length > 0 ? tokens.length : undefined,
    specialTexts: specialTexts(info),
  };
}

/**
 * `/api/show`'s answer, and the GGUF blob's metadata where it could be read (`file`), → the canonical renderer's
 * source, or why Ollama's own template is all there is.
 */
export function templateFromShow(show: OllamaShowResponse, file?: GgufKeys): OllamaTemplate {
  const template = typeof show.template === "string" ? show.template : "";
  if (isJinjaChatTemplate(template)) return fromMetadata(template, "api-show", show.model_info ?? {});
  if (file) {
    const own = file["tokenizer.chat_template"];
    return fromMetadata(typeof own === "string" && own.length > 0 ? own : undefined, "gguf-file", file);
  }
  return {
    kind: "ollama-template",
    reason:
      template.trim() === ""
        ? "Ollama reports no template for this model and its GGUF file cannot be read here"
        : "Ollama reports its own Go template for this model, not the GGUF's Jinja chat template, and the GGUF file cannot be read here",
  };
}
