import type { LlamaModel, Token } from "node-llama-cpp";
import { TokenTextStream } from "../backends/embedded/token-text-stream.js";
import { ConstrainedAnswer } from "../constrained/constrained-answer.js";

/**
 * The index of the output token with which a constrained answer's text reached its grammar's end, where generation
 * stops by itself (constrained-answer.ts: JSON and calls end at four newlines), or undefined when it never did. It
 * replays what generation ran on the same tokens, the text stream and the answer reader, so the two cannot disagree.
 * `prompt`: the tokens before the answer (its text is decoded after them, as generation decodes it).
 */
export function grammarEndIndex(model: LlamaModel, prompt: readonly number[], output: readonly number[], kind: "json" | "tools"): number | undefined {
  const text = new TokenTextStream(model, prompt as Token[]);
  const answer = new ConstrainedAnswer(kind, false);
  for (let i = 0; i < output.length; i++) {
    const delta = text.push(output[i] as Token);
    if (delta && answer.push(delta).ended) return i;
  }
  return undefined;
}
