import type { LlamaModel, Token } from "node-llama-cpp";

/**
 * Turns generated tokens into text deltas. Invariant: the concatenation of every delta's text is
 * `detokenize(all generated, context)` and the concatenation of their tokens is every generated token.
 * Text is decoded in the context of the tokens before it (prompt tail and any continuation prefix) so SentencePiece
 * spaces come out as they would in one uninterrupted run; a trailing U+FFFD (a UTF-8 sequence split across byte
 * tokens) is held back until the next token completes it or the stream ends.
 */
const CONTEXT_TOKENS = 16;

export class TokenTextStream {
  private readonly generated: Token[] = [];
  private pendingTokens: Token[] = [];
  private emitted = "";
  private readonly baseText: string;

  /** `before`: prompt tokens; `prefix`: continuation tokens whose text the caller already has (not re-emitted). */
  constructor(
    private readonly model: LlamaModel,
    private readonly before: readonly Token[],
    private readonly prefix: readonly Token[] = [],
  ) {
    this.baseText = prefix.length > 0 ? model.detokenize(prefix, false, before.slice(-CONTEXT_TOKENS)) : "";
  }

  private fullText(): string {
    if (this.prefix.length === 0) return this.model.detokenize(this.generated, false, this.before.slice(-CONTEXT_TOKENS));
    const all = this.model.detokenize([...this.prefix, ...this.generated], false, this.before.slice(-CONTEXT_TOKENS));
    // The prefix's own text is a prefix of the joined text except in the U+FFFD corner case; fall back to decoding
    // the new tokens in the context of the prefix then.
    return all.startsWith(this.baseText)
      ? all.slice(this.baseText.length)
      : this.model.detokenize(this.generated, false, [...this.before, ...this.prefix].slice(-CONTEXT_TOKENS));
  }

  /** Adds one generated token; returns the delta to emit now, or undefined when its text is held back. */
  push(token: Token): { text: string; tokens: Token[] } | undefined {
    this.generated.push(token);
    this.pendingTokens.push(token);
    let text = this.fullText();
    while (text.endsWith("\uFFFD")) text = text.slice(0, -1);
    if (text.length <= this.emitted.length || !text.startsWith(this.emitted)) return undefined;
    return this.take(text);
  }

  /** Everything not yet emitted (text and tokens), at the end of the stream; undefined when nothing is left. */
  flush(): { text: string; tokens: Token[] } | undefined {
    if (this.pendingTokens.length === 0) return undefined;
    const text = this.fullText();
    return this.take(text.startsWith(this.emitted) ? text : this.emitted);
  }

  private take(text: string): { text: string; tokens: Token[] } {
    const delta = { text: text.slice(this.emitted.length), tokens: this.pendingTokens };
    this.emitted = text;
    this.pendingTokens = [];
    return delta;
  }

  get tokens(): readonly Token[] {
    return this.generated;
  }
}
