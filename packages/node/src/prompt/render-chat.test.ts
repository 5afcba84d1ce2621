import type { ChatMessage } from "@tessera/protocol";
import { describe, expect, it } from "vitest";
import { LLAMA_CPP_DEFAULT_TEMPLATE, formatFallbackPrompt, hasToolTurns, renderChat } from "./render-chat.js";
import { assemblePromptTokens, promptTokensRefusal } from "./prompt-tokens.js";

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Llama 2's template (trimmed): BOS as text before each user turn, a system prompt folded into the first one. */
const LLAMA2 =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
  "{% for message in loop_messages %}" +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/** A Qwen2.5-style template's tool-call branch: calls written as JSON with `arguments | tojson`. */
const WITH_TOOL_CALLS =
  "{% for message in messages %}{% if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n" +
  "{% for tool_call in message.tool_calls %}<tool_call>\n{\"name\": \"{{ tool_call.function.name }}\", \"arguments\": {{ tool_call.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n" +
  "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n" +
  "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

const MESSAGES: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Tell me about the fox" },
];

const source = (template: string | undefined, addBos = false) => ({ template, bosToken: "<s>", eosToken: "</s>", addBos });

describe("renderChat", () => {
  it("renders ChatML with the generation prompt open", () => {
    const out = renderChat(source(CHATML), MESSAGES);
    expect(out).toEqual({
      kind: "chat-template",
      text: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me about the fox<|im_end|>\n<|im_start|>assistant\n",
      parseSpecial: true,
    });
  });

  it("renders a Llama-2-style template and drops the leading BOS text when BOS is added as a token (as llama.cpp does)", () => {
    const turns: ChatMessage[] = [...MESSAGES, { role: "assistant", content: "A fox." }, { role: "user", content: "More?" }];
    const expected = "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nTell me about the fox [/INST] A fox. </s><s>[INST] More? [/INST]";
    expect(renderChat(source(LLAMA2, true), turns).text).toBe(expected);
    // A vocabulary that adds no BOS keeps the template's BOS text: it is then the only BOS.
    expect(renderChat(source(LLAMA2, false), turns).text).toBe("<s>" + expected);
  });

  it("a template that raises is bad_request with the template's message", () => {
    const turns: ChatMessage[] = [{ role: "user", content: "a" }, { role: "user", content: "b" }];
    expect(() => renderChat(source(LLAMA2), turns)).toThrow(expect.objectContaining({ code: "bad_request", message: expect.stringContaining("roles must alternate") }));
  });

  it("a template that does not parse is bad_request", () => {
    expect(() => renderChat(source("{% for m in messages %}"), MESSAGES)).toThrow(expect.objectContaining({ code: "bad_request" }));
  });

  it("renders an assistant turn's tool calls with their arguments as an object, and the tool's answer", () => {
    const turns: ChatMessage[] = [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [{ id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", content: "12 C", tool_call_id: "call_1" },
    ];
    const text = renderChat(source(WITH_TOOL_CALLS), turns).text;
    expect(text).toContain('<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(text).toContain("<tool_response>\n12 C\n</tool_response>");
    expect(text.endsWith("<|im_start|>assistant\n")).toBe(true);
    // Such a chat has no canonical ids: each backend writes tool turns its own way.
    expect(hasToolTurns(turns)).toBe(true);
    expect(hasToolTurns(MESSAGES)).toBe(false);
  });

  it("a file without a template, or with llama.cpp's built-in default (what llama-server reports then), gets the fallback", () => {
    for (const template of [undefined, "", LLAMA_CPP_DEFAULT_TEMPLATE]) {
      expect(renderChat(source(template), MESSAGES)).toEqual({ kind: "fallback", text: formatFallbackPrompt(MESSAGES), parseSpecial: false });
    }
    expect(formatFallbackPrompt(MESSAGES)).toBe("System: Be brief.\nUser: Tell me about the fox\nAssistant:");
  });
});

describe("prompt token ids", () => {
  it("BOS goes first only when the vocabulary adds one", () => {
    expect(assemblePromptTokens({ id: 1, add: true }, [5, 6])).toEqual([1, 5, 6]);
    expect(assemblePromptTokens({ id: 1, add: false }, [5, 6])).toEqual([5, 6]);
    expect(assemblePromptTokens({ id: undefined, add: true }, [5, 6])).toEqual([5, 6]);
  });

  it("refuses ids outside the vocabulary, non-integers, empty or over-long lists, naming prompt_tokens", () => {
    const limits = { vocabSize: 100, maxLength: 4 };
    expect(promptTokensRefusal([0, 99], limits)).toBeUndefined();
    for (const ids of [[], [1, 100], [1, -1], [1.5], ["3"], [1, 2, 3, 4, 5]] as unknown[][]) {
      expect(promptTokensRefusal(ids, limits)).toMatchObject({ code: "bad_request", param: "prompt_tokens" });
    }
    expect(promptTokensRefusal([123456], { vocabSize: undefined, maxLength: 4 })).toBeUndefined();
  });
});
