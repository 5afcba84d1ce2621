import { type ChatMessage, TesseraError } from "@tessera/protocol";
import { convertMessages } from "../openai-compatible/convert-messages.js";
import { type ScoreHttp, postJson, tokenList } from "../openai-compatible/score-http.js";

/**
 * The prompt ids SGLang runs for a chat: its own chat template over `messages`, read back as
 * `choices[0].prompt_token_ids` from a one-token `POST /v1/chat/completions` with `return_prompt_token_ids: true`
 * (SGLang 0.5.13 and later; an older one answers none: `unsupported_parameter` naming the field). One prefill and one
 * token; SGLang's radix cache keeps the prompt, so a `/generate` on the same ids right after reuses it.
 */
export async function sglangChatPromptIds(http: ScoreHttp, model: string, messages: ChatMessage[]): Promise<number[]> {
  const res = (await postJson(http, "/v1/chat/completions", {
    model,
    messages: convertMessages(messages, undefined, "continue-final-message").messages,
    max_tokens: 1,
    temperature: 0,
    stream: false,
    return_prompt_token_ids: true,
  })) as { choices?: Array<{ prompt_token_ids?: unknown }> } | null;
  const ids = res?.choices?.[0]?.prompt_token_ids;
  if (ids === undefined || ids === null) {
    throw new TesseraError(
      "unsupported_parameter",
      `${http.kind}: /v1/chat/completions answered no prompt_token_ids for return_prompt_token_ids (SGLang 0.5.13 or later returns them), so a chat's prompt ids are unknown`,
      { param: "return_prompt_token_ids" },
    );
  }
  return tokenList(http.kind, "prompt_token_ids", ids);
}

/** `POST /v1/tokenize`: `text` as SGLang's tokenizer splits it, with the model's special tokens (BOS) when asked. */
export async function sglangTokenize(http: ScoreHttp, model: string, text: string, addSpecialTokens: boolean): Promise<number[]> {
  const res = (await postJson(http, "/v1/tokenize", { model, prompt: text, add_special_tokens: addSpecialTokens })) as { tokens?: unknown } | null;
  if (!addSpecialTokens && Array.isArray(res?.tokens) && res.tokens.length === 0) return [];
  return tokenList(http.kind, "tokens", res?.tokens);
}
