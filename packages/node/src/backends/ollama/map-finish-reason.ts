import type { FinishReason } from "@tessera/protocol";

/**
 * Ollama's `done_reason` on the final chat object → Tessera's. `stop` (EOS or a stop sequence) and `length`
 * (`num_predict` reached) are what generation ends with; older Ollama versions send no `done_reason` at all, which
 * only happens on a normal end, so it reads as `stop`.
 */
export function mapOllamaDoneReason(reason: unknown): FinishReason {
  if (reason === "length") return "length";
  return "stop";
}
