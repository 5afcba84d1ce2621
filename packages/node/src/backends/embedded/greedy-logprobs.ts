import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { ScoredToken } from "./scored-generation.js";

type GreedyItem = [Token, { generateNext: { token: true; totalLogitWeight: true } }];

/**
 * Greedy generation that reports each chosen token's log-probability, for the trust checks: every greedy answer
 * carries them, whether or not its client asked, because the node cannot know which answers the coordinator will
 * check (design.md, "Log-probabilities for the checks").
 *
 * Each step asks node-llama-cpp (`controlledEvaluate`, no sampling options: its greedy sampler alone, which changes no
 * logit) for the chosen token and Σ exp(logit − max) over the whole vocabulary (`totalLogitWeight`). Greedy picks a
 * token of the largest logit, so its log-probability is exactly −ln Σ: the model's own, over the whole vocabulary,
 * the figure the reference scores. This is one pass over the logits in native code. It replaces
 * `evaluateWithMetadata({ confidence: true })`, which gives the same figure but first sorts the whole vocabulary
 * (node-llama-cpp 3.22's sampleToken sorts the candidates whenever confidence is asked): on the 50m model (32,000
 * tokens) that sort held this engine to 0.56-0.66× of plain node-llama-cpp at 1 and 8 streams, and this path runs at
 * 0.70-0.91× (`npm run bench -- engine-path --split`, design.md).
 */
export async function* greedyWithLogprobs(sequence: LlamaContextSequence, input: readonly Token[]): AsyncGenerator<ScoredToken> {
  if (input.length === 0) throw new RangeError("greedy generation needs at least one input token");
  const greedy = (token: Token): GreedyItem => [token, { generateNext: { token: true, totalLogitWeight: true } }];
  let items: Array<Token | GreedyItem> = [...input.slice(0, -1), greedy(input[input.length - 1]!)];
  for (;;) {
    const results = await sequence.controlledEvaluate(items);
    const next = results[items.length - 1]?.next;
    const token = next?.token;
    const weight = next?.totalLogitWeight;
    if (token === undefined || token === null || weight === undefined || !(weight >= 1)) throw new Error("node-llama-cpp returned no next token");
    yield { token, logprob: Math.min(0, -Math.log(weight)), top: [] };
    items = [greedy(token)];
  }
}
