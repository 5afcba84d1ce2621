import type { LlamaModel, Token } from "node-llama-cpp";

/**
 * Turns generated tokens into text deltas, in O(1) work per token.
 *
 * Invariants (the failover contract relies on them):
 * - every delta's text is exactly the decoding of that delta's tokens after all the tokens before them, so any
 *   prefix of the deltas gives a matching (text, token ids) pair another node can continue from;
 * - the concatenation of all deltas equals decoding all generated tokens at once after the prompt.
 * Tokens are decoded in the context of the tokens before them (prompt tail, continuation prefix, earlier output) so
 * SentencePiece spaces come out as in one uninterrupted run. A delta whose text is empty or ends in U+FFFD (a UTF-8
 * sequence split across byte tokens) is held back, tokens included, until a later token completes it or the stream
 * ends.
 */
const CONTEXT_TOKENS = 16;

export class TokenTextStream {
  private pending: Token[] = [];
  /** The last tokens before `pending`: the decoding context. */
  private history: Token[];

  /** `before`: prompt tokens; `prefix`: continuation tokens whose text the caller already has (not re-emitted). */
  constructor(
    private readonly model: LlamaModel,
    before: readonly Token[],
    prefix: readonly Token[] = [],
  ) {
    this.history = [...before.slice(-CONTEXT_TOKENS), ...prefix.slice(-CONTEXT_TOKENS)].slice(-CONTEXT_TOKENS);
  }

  private decodePending(): string {
    return this.model.detokenize(this.pending, false, this.history);
  }

  /** Adds one generated token; returns the delta to emit now, or undefined when it is held back. */
  push(token: Token): { text: string; tokens: Token[] } | undefined {
    this.pending.push(token);
    const text = this.decodePending();
    if (text === "" || text.endsWith("\uFFFD")) return undefined;
    return this.take(text);
  }

  /** What is still held back, at the end of the stream; undefined when nothing is. */
  flush(): { text: string; tokens: Token[] } | undefined {
    if (this.pending.length === 0) return undefined;
    return this.take(this.decodePending());
  }

  private take(text: string): { text: string; tokens: Token[] } {
    const tokens = this.pending;
    this.pending = [];
    this.history = [...this.history, ...tokens].slice(-CONTEXT_TOKENS);
    return { text, tokens };
  }
}
