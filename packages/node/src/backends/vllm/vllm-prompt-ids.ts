import type { ChatMessage } from "@tessera/protocol";
import { convertMessages } from "../openai-compatible/convert-messages.js";
import { type ScoreHttp, postJson, tokenList } from "../openai-compatible/score-http.js";

/**
 * The prompt ids vLLM runs for a chat: `POST /tokenize` with the messages, rendered by the server's own chat template
 * (`add_generation_prompt`, no special tokens added: the template writes them), exactly as its chat route renders them.
 */
export async function vllmChatPromptIds(http: ScoreHttp, model: string, messages: readonly ChatMessage[]): Promise<number[]> {
  const res = (await postJson(http, "/tokenize", {
    model,
    messages: convertMessages([...messages], undefined, "continue-final-message").messages,
    add_generation_prompt: true,
    add_special_tokens: false,
  })) as { tokens?: unknown } | null;
  return tokenList(http.kind, "tokens", res?.tokens);
}

/** `POST /tokenize` of a text: `addSpecialTokens` as vLLM's completion route adds them to a text prompt (BOS). */
export async function vllmTokenize(http: ScoreHttp, model: string, text: string, addSpecialTokens: boolean): Promise<number[]> {
  const res = (await postJson(http, "/tokenize", { model, prompt: text, add_special_tokens: addSpecialTokens })) as { tokens?: unknown } | null;
  return tokenList(http.kind, "tokens", res?.tokens);
}
