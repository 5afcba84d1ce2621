import { type CheckError, type CheckScore, type CheckScores, LOGPROB_FLOOR, TesseraError } from "@tessera/protocol";
import type { BackendAdapter } from "./backends/adapter.js";
import { PromptMismatchError } from "./prompt/index.js";

const floor = (logprob: number) => (Number.isFinite(logprob) ? Math.max(LOGPROB_FLOOR, Math.min(0, logprob)) : LOGPROB_FLOOR);

/**
 * A spot check's scoring, as a reference node does it (check.ts): the backend teacher-forces the other node's tokens
 * and this answers with the scores, or with why it could not. Never throws.
 */
export async function scoreForCheck(backend: BackendAdapter, request: CheckScore): Promise<CheckScores | CheckError> {
  if (!backend.score) return { type: "check.error", check_id: request.check_id, message: `backend ${backend.kind} cannot score given tokens` };
  try {
    const scores = await backend.score({
      model: request.model,
      messages: request.messages,
      ...(request.raw_prompt ? { rawPrompt: true } : {}),
      ...(request.prompt_tokens !== undefined ? { promptTokens: request.prompt_tokens } : {}),
      ...(request.constraint ? { constraint: request.constraint } : {}),
      outputTokens: request.output_tokens,
    });
    return {
      type: "check.scores",
      check_id: request.check_id,
      prompt_tokens: scores.promptTokens,
      positions: scores.positions.map((p) => ({ token: p.token, logprob: floor(p.logprob), rank: p.rank, ...(p.topMass !== undefined ? { top_mass: p.topMass } : {}) })),
      eos: { logprob: floor(scores.eos.logprob), rank: scores.eos.rank },
    };
  } catch (err) {
    const message = err instanceof TesseraError ? err.message : `scoring failed: ${(err as Error).message}`;
    return { type: "check.error", check_id: request.check_id, message: message.slice(0, 1024), ...(err instanceof PromptMismatchError ? { reason: "prompt_mismatch" as const } : {}) };
  }
}
