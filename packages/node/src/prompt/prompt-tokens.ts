import { TesseraError } from "@tessera/protocol";

/**
 * Rendered text → prompt token ids, the same on every backend: BOS first when the vocabulary asks for one, then the
 * text tokenised with special tokens parsed for a template (`parseSpecial`), never with EOS appended (a prompt ends
 * open for the answer). `tokenize` is the backend's own tokeniser with no special tokens added (embedded:
 * `model.tokenize(text, parseSpecial)`; llama-server: `POST /tokenize` with `add_special: false`).
 */
export function assemblePromptTokens(bos: { id: number | undefined; add: boolean }, textTokens: readonly number[]): number[] {
  return bos.add && bos.id !== undefined ? [bos.id, ...textTokens] : [...textTokens];
}

/**
 * Prompt token ids this node is told to run (`job.assign` `prompt_tokens`, `check.score` `prompt_tokens`): integers
 * in [0, vocabSize) and, with the tokens still to come, within the context. Anything else is refused as
 * `bad_request` naming `prompt_tokens`, never run: ids from another vocabulary would be a different prompt.
 * `vocabSize` undefined: the backend checks the range itself (llama-server answers 400 "Prompt contains invalid tokens").
 */
export function promptTokensRefusal(ids: readonly unknown[], limits: { vocabSize: number | undefined; maxLength: number }): TesseraError | undefined {
  if (ids.length === 0) return new TesseraError("bad_request", "prompt_tokens is empty", { param: "prompt_tokens" });
  if (ids.length > limits.maxLength) {
    return new TesseraError("bad_request", `prompt_tokens holds ${ids.length} ids; this model's context holds ${limits.maxLength}`, { param: "prompt_tokens" });
  }
  const bad = ids.findIndex((t) => typeof t !== "number" || !Number.isInteger(t) || t < 0 || (limits.vocabSize !== undefined && t >= limits.vocabSize));
  if (bad !== -1) {
    const range = limits.vocabSize !== undefined ? `[0, ${limits.vocabSize})` : "the non-negative integers";
    return new TesseraError("bad_request", `prompt_tokens[${bad}] = ${String(ids[bad])} is not a token id of this model (${range})`, { param: "prompt_tokens" });
  }
  return undefined;
}

/**
 * A spot-check reference's own rendering of the messages differs from the prompt ids the checked node claimed it ran
 * (`check.score` `prompt_tokens`): the node lied about its prompt, or rendered it another way. Answered as
 * `check.error` with `reason: "prompt_mismatch"`, which fails the check.
 */
export class PromptMismatchError extends TesseraError {
  constructor(claimed: number, rendered: number) {
    super("bad_request", `prompt_mismatch: the checked node's ${claimed} prompt ids are not this model's rendering of the messages (${rendered} ids)`, { param: "prompt_tokens" });
  }
}

export function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
