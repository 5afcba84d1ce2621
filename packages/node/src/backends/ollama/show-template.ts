import type { ChatTemplateSource } from "../../prompt/index.js";

/**
 * What `POST /api/show {model, verbose:true}` says about a model's chat template, read for the canonical prompt
 * (design.md "Canonical prompt"). Ollama's wire format (server/routes.go `GetModelInfo`):
 * - `template`: the template Ollama renders `/api/chat` with. Classic Ollama reports its own Go template here
 *   (`{{ if .System }}…{{ range .Messages }}…`: hand-written for ollama.com models, converted from the GGUF's Jinja
 *   on import otherwise, `{{ .Prompt }}` for a file with none). Builds whose native chat mode runs the GGUF's own
 *   template report that Jinja source (`tokenizer.chat_template`) here instead.
 * - `model_info`: the GGUF metadata, always WITHOUT `tokenizer.chat_template` (Ollama deletes it) and, unless
 *   `verbose`, with every array longer than 5 emptied, the vocabulary (`tokenizer.ggml.tokens`) included. The BOS/EOS
 *   text comes from that vocabulary at `tokenizer.ggml.bos_token_id` / `eos_token_id`, hence `verbose: true`.
 *
 * Only a Jinja template can be the canonical one: Ollama's Go templates are Ollama's own renderings, which are exactly
 * what issue 17 §0 replaces. So a Go template (or none) is reported as `ollama-template`, with the reason.
 */
export interface OllamaShowResponse {
  template?: unknown;
  model_info?: Record<string, unknown>;
}

export type OllamaTemplate =
  /** `vocabSize`: the vocabulary's length, where `model_info` lists it (the range given prompt ids must fall in). */
  | { kind: "jinja"; source: ChatTemplateSource; vocabSize: number | undefined }
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

function tokenText(info: Record<string, unknown>, key: string): string {
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
function addsBos(info: Record<string, unknown>): boolean {
  const explicit = info["tokenizer.ggml.add_bos_token"];
  if (typeof explicit === "boolean") return explicit;
  const model = info["tokenizer.ggml.model"];
  return model === "llama" || model === "bert";
}

/** `/api/show`'s answer → the canonical renderer's source, or why Ollama's own template is all there is. */
export function templateFromShow(show: OllamaShowResponse): OllamaTemplate {
  const template = show.template;
  if (typeof template !== "string" || template.trim() === "") {
    return { kind: "ollama-template", reason: "Ollama reports no template for this model" };
  }
  if (!isJinjaChatTemplate(template)) {
    return { kind: "ollama-template", reason: "Ollama reports its own Go template for this model, not the GGUF's Jinja chat template" };
  }
  const info = show.model_info ?? {};
  const bosToken = tokenText(info, "tokenizer.ggml.bos_token_id");
  const tokens = info["tokenizer.ggml.tokens"];
  return {
    kind: "jinja",
    vocabSize: Array.isArray(tokens) && tokens.length > 0 ? tokens.length : undefined,
    source: { template, bosToken, eosToken: tokenText(info, "tokenizer.ggml.eos_token_id"), addBos: addsBos(info) },
  };
}
