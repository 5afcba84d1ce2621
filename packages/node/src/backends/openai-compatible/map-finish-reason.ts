import type { FinishReason } from "@tessera/protocol";

/**
 * OpenAI-compatible `finish_reason` → Tessera's. `stop`, `eos`, `tool_calls`, `function_call`, `content_filter`
 * all end the answer normally; `length` is the token limit; vLLM and SGLang say `abort` when a request was
 * cancelled server-side; `error` is the backend's own failure. `null` (chunk not final) stays undefined.
 */
export function mapOpenAIFinishReason(reason: string | null | undefined): FinishReason | undefined {
  switch (reason) {
    case null:
    case undefined:
      return undefined;
    case "length":
      return "length";
    case "abort":
      return "cancelled";
    case "error":
      return "error";
    default:
      return "stop";
  }
}
