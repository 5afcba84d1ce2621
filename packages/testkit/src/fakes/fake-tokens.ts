/**
 * Deterministic "generation" for the fakes: a reply is split into word-like tokens (`"Hello"`, `" world"`), each
 * with a deterministic log-probability, so adapters' token counts, text and logprobs can be asserted exactly.
 */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/** The log-probability the fakes report for the token at `index` of a reply: always in (-1, 0]. */
export function fakeLogprob(index: number): number {
  return -((index % 7) + 1) / 16;
}

/** A stable id for a token's text (what a vocabulary lookup would give), for backends that report token ids. */
export function fakeTokenId(token: string): number {
  let h = 7;
  for (const ch of token) h = (h * 131 + ch.charCodeAt(0)) % 32_000;
  return h;
}

/** A stand-in prompt token count: words of every message plus 4 template tokens per message. */
export function countPromptTokens(messages: { content: string | null }[]): number {
  let n = 0;
  for (const m of messages) n += 4 + tokenize(m.content ?? "").length;
  return n;
}

export interface PlannedReply {
  /** Tokens still to generate (after any continued prefix). */
  tokens: string[];
  /** `length` when max_tokens cut the reply short. */
  finish: "stop" | "length";
}

/**
 * What the fake will generate. With `continuePrefix` (the backend was asked to continue a trailing assistant
 * message), generation resumes after that prefix when the prefix is the start of the full reply, as a real model
 * continuing its own greedy output would; otherwise the reply is generated whole.
 */
export function planReply(fullReply: string, maxTokens: number | undefined, continuePrefix?: string): PlannedReply {
  let text = fullReply;
  if (continuePrefix !== undefined && continuePrefix.length > 0 && fullReply.startsWith(continuePrefix)) {
    text = fullReply.slice(continuePrefix.length);
  }
  const all = tokenize(text);
  if (maxTokens !== undefined && maxTokens < all.length) return { tokens: all.slice(0, maxTokens), finish: "length" };
  return { tokens: all, finish: "stop" };
}
