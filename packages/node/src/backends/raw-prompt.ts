import { TesseraError } from "@tessera/protocol";
import type { GenerateRequest } from "./adapter.js";

/**
 * Raw-prompt requests (`/v1/completions`, session.ts `JobAssignment.raw_prompt`): the job's one user message is the
 * entire prompt, fed to the model as is, with no chat template. A continuation (failover) runs on the prompt followed
 * by the text another node already produced, so the joined answer reads as one uninterrupted run.
 */

/** The prompt text of a raw-prompt request, without any continuation prefix. */
export function rawPromptOf(request: Pick<GenerateRequest, "messages">): string {
  return request.messages[0]?.content ?? "";
}

/** The text a backend that takes text continues: the prompt, then the continuation prefix. */
export function rawPromptText(request: Pick<GenerateRequest, "messages" | "assistantPrefix">): string {
  return rawPromptOf(request) + (request.assistantPrefix ?? "");
}

/**
 * Why this backend will not run a raw-prompt request, or undefined. A raw prompt is one user message; tools need a
 * chat template to be offered in, so they are refused; `response_format` is refused where the backend cannot
 * constrain a raw completion (`allowResponseFormat` false).
 */
export function rawPromptRefusal(kind: string, request: GenerateRequest, options: { allowResponseFormat: boolean }): TesseraError | undefined {
  if (!request.rawPrompt) return undefined;
  if (request.messages.length !== 1 || request.messages[0]!.role !== "user") {
    return new TesseraError("bad_request", `${kind}: a raw prompt is exactly one user message`);
  }
  if (request.sampling.tools?.length) return new TesseraError("bad_request", `${kind}: tools cannot be used with a raw prompt (there is no chat template to offer them in)`);
  if (request.sampling.response_format && !options.allowResponseFormat) {
    return new TesseraError("bad_request", `${kind}: response_format cannot be used with a raw prompt on this backend`);
  }
  return undefined;
}
