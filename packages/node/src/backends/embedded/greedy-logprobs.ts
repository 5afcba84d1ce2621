import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { ScoredToken } from "./scored-generation.js";
import { type Step, SequenceSteps } from "./sequence-steps.js";

/**
 * Greedy generation that reports each chosen token's log-probability, for the trust checks: every greedy answer
 * carries them, whether or not its client asked, because the node cannot know which answers the coordinator will
 * check (design.md, "Log-probabilities for the checks").
 *
 * Each step (sequence-steps.ts) takes llama.cpp's greedy choice and Σ exp(logit − max) over the whole vocabulary
 * (`totalLogitWeight`). Greedy picks a token of the largest logit, so its log-probability is exactly −ln Σ: the
 * model's own, over the whole vocabulary, the figure the reference scores. This is one pass over the logits in
 * native code, on the engine's thread; nothing is sorted.
 *
 * **The engine runs a token ahead.** Greedy's next input is the token just chosen, so its decode starts before that
 * token is handed on: the engine computes while this thread turns the token into text, a part and a frame, instead of
 * waiting for all of that (design.md, "Generation"). It does not run ahead past the last token the caller will take
 * (`limit`), an end-of-generation token, or the context's last free cell (where the next decode would shift the
 * context); a caller that stops early for another reason (a stop sequence, an abort) leaves one decoded token in the
 * sequence, which the sequence pool clears with the rest of the answer.
 */
export async function* greedyWithLogprobs(sequence: LlamaContextSequence, input: readonly Token[], limit = Infinity): AsyncGenerator<ScoredToken> {
  if (input.length === 0) throw new RangeError("greedy generation needs at least one input token");
  const steps = new SequenceSteps(sequence);
  let ahead: Promise<Step> | undefined = steps.next(input);
  try {
    let last: Token | undefined;
    for (let taken = 0; ; ) {
      const step: Step = await (ahead ?? steps.next([last!]));
      const { token, totalLogitWeight } = step;
      taken++;
      const room = sequence.nextTokenIndex < sequence.context.contextSize - 1;
      ahead = taken < limit && room && !sequence.model.isEogToken(token) ? steps.next([token]) : undefined;
      // Awaited when the caller asks for the next token (or when it stops, below): a failure is never left unheard.
      ahead?.catch(() => undefined);
      last = token;
      yield { token, logprob: Math.min(0, -Math.log(totalLogitWeight)), top: [] };
    }
  } finally {
    // The sampler is in use until the step ahead ends.
    await ahead?.catch(() => undefined);
    steps.dispose();
  }
}
