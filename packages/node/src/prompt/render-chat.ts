import { Template } from "@huggingface/jinja";
import { type ChatMessage, TesseraError, type ToolDefinition } from "@tessera/protocol";

/**
 * The one chat renderer every backend's node uses (issue 17 §0): a model's own Jinja chat template (the GGUF's
 * `tokenizer.chat_template`), rendered by `@huggingface/jinja` the way llama.cpp's server renders it
 * (common/chat.cpp `common_chat_templates_apply`): variables `messages`, `bos_token`, `eos_token`,
 * `add_generation_prompt: true` (and `tools` when given); a rendered text that starts with the BOS text loses it when
 * the model adds BOS as a token anyway (no double BOS). The text is then tokenised with special tokens parsed and BOS
 * prepended where the vocabulary asks for one (`canonicalPromptTokens`, prompt-tokens.ts). See
 * packages/node/src/backends/design.md "Canonical prompt".
 *
 * A file with no template gets the fallback below, the embedded engine's format since issue 5 (unchanged, so the
 * testkit's template-less models keep their prompt tokens): plain text, special-token text NOT parsed.
 */
export interface ChatTemplateSource {
  /** The Jinja source; undefined or empty when the model carries none (see `LLAMA_CPP_DEFAULT_TEMPLATE`). */
  template: string | undefined;
  /** The BOS and EOS tokens' text (`<s>`, `<|endoftext|>`); empty when the vocabulary has none. */
  bosToken: string;
  eosToken: string;
  /** The vocabulary asks for BOS before every prompt (GGUF `tokenizer.ggml.add_bos_token`, llama.cpp's rule). */
  addBos: boolean;
}

export interface RenderedPrompt {
  kind: "chat-template" | "fallback";
  text: string;
  /** Tokenise with special-token text (`<|im_start|>`) read as those tokens: true for templates, false for the fallback. */
  parseSpecial: boolean;
}

/**
 * llama.cpp's built-in ChatML (common/chat.cpp `CHATML_TEMPLATE_SRC`, llama.cpp as bundled with node-llama-cpp 3.22.1):
 * what llama-server's `GET /props` reports as `chat_template` for a file that has none. Over HTTP the two cannot be
 * told apart, so a template byte-identical to this source counts as absent on every backend alike.
 */
export const LLAMA_CPP_DEFAULT_TEMPLATE =
  "{%- for message in messages -%}\n" +
  "  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n" +
  "{%- endfor -%}\n" +
  "{%- if add_generation_prompt -%}\n" +
  "  {{- '<|im_start|>assistant\n' -}}\n" +
  "{%- endif -%}";

const FALLBACK_ROLE_LABEL: Record<ChatMessage["role"], string> = { system: "System", user: "User", assistant: "Assistant", tool: "Tool" };

/**
 * The fallback template (text only; BOS is added as a token when the model wants one):
 * `System: …\nUser: …\nAssistant: …\n` per message, then `Assistant:` with no trailing space.
 */
export function formatFallbackPrompt(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `${FALLBACK_ROLE_LABEL[m.role]}: ${m.content}\n`).join("") + "Assistant:";
}

export function hasOwnTemplate(template: string | undefined): template is string {
  return typeof template === "string" && template.length > 0 && template !== LLAMA_CPP_DEFAULT_TEMPLATE;
}

/**
 * Messages that carry tool calls or tool results. Backends offer tools and write earlier calls each their own way
 * (the embedded engine's Hermes-style text, tool-prompt.ts; llama-server's `--jinja` template), so such a chat has no
 * canonical prompt ids: none are reported or carried for it, and backends render it as before.
 */
export function hasToolTurns(messages: readonly ChatMessage[]): boolean {
  return messages.some((m) => m.role === "tool" || (m.tool_calls?.length ?? 0) > 0);
}

/** Parsed templates by source: a node renders with one or two templates all its life. */
const parsed = new Map<string, Template>();
function compile(source: string): Template {
  let template = parsed.get(source);
  if (!template) {
    try {
      template = new Template(source);
    } catch (error) {
      throw new TesseraError("bad_request", `the model's chat template does not parse: ${(error as Error).message}`);
    }
    if (parsed.size >= 16) parsed.clear();
    parsed.set(source, template);
  }
  return template;
}

/**
 * A message as chat templates read it (OpenAI's shape, as Hugging Face's `apply_chat_template` takes it): tool-call
 * arguments become an object when they are a JSON object, as templates that write `arguments | tojson` expect.
 */
function templateMessage(m: ChatMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role, content: m.content };
  if (m.tool_calls?.length) {
    out.tool_calls = m.tool_calls.map((call) => ({
      id: call.id,
      type: "function",
      function: { name: call.function.name, arguments: parseArguments(call.function.arguments) },
    }));
  }
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  return out;
}

function parseArguments(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : text;
  } catch {
    return text;
  }
}

/** Renders `messages` with the model's template, or the fallback. A template that raises gives `bad_request`. */
export function renderChat(source: ChatTemplateSource, messages: readonly ChatMessage[], options: { tools?: readonly ToolDefinition[] } = {}): RenderedPrompt {
  if (!hasOwnTemplate(source.template)) return { kind: "fallback", text: formatFallbackPrompt(messages), parseSpecial: false };
  const template = compile(source.template);
  const variables: Record<string, unknown> = {
    messages: messages.map(templateMessage),
    bos_token: source.bosToken,
    eos_token: source.eosToken,
    add_generation_prompt: true,
  };
  if (options.tools?.length) variables.tools = options.tools;
  let text: string;
  try {
    text = template.render(variables);
  } catch (error) {
    throw new TesseraError("bad_request", `the model's chat template refused these messages: ${(error as Error).message}`);
  }
  // llama.cpp does the same (common_chat_templates_apply): BOS is a token it adds itself, never text plus a token.
  if (source.addBos && source.bosToken.length > 0 && text.startsWith(source.bosToken)) text = text.slice(source.bosToken.length);
  return { kind: "chat-template", text, parseSpecial: true };
}
