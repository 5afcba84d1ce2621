/**
 * Knobs every fake backend shares. They can be changed while the fake runs (`fake.setBehaviour({...})`), so a test
 * can make a healthy backend slow, failing or unreachable between two requests.
 */
export interface FakeBehaviour {
  /** Emit generated tokens at this fixed rate per stream; 0 = as fast as the socket takes them. */
  tokensPerSecond: number;
  /** Wait this long before answering any request (a slow or overloaded backend). */
  responseDelayMs: number;
  /** After this many generated tokens, fail the stream with the backend's own mid-stream error shape. */
  failAfterTokens: number | undefined;
  /** Cut the TCP connection (no error message) after this many tokens: a crashed backend. */
  dropAfterTokens: number | undefined;
  /**
   * Write this many tokens, then write nothing more until `until` resolves: while it holds, a test knows exactly what
   * the server has written, so "the client saw token 1 before token 6 existed" is shown by order, not by timing.
   */
  hold: { afterTokens: number; until: Promise<void> } | undefined;
  /** The words the fake answers with (before `max_tokens` cuts them). A function gets the last user message. */
  reply: string | ((lastUserMessage: string) => string);
  /** The arguments (JSON text) the fake writes when it calls a tool (see fake-tools.ts). */
  toolArguments: string;
}

export const DEFAULT_BEHAVIOUR: FakeBehaviour = {
  tokensPerSecond: 0,
  responseDelayMs: 0,
  failAfterTokens: undefined,
  dropAfterTokens: undefined,
  hold: undefined,
  reply: (last) => `Hello! You said: ${last}`,
  toolArguments: '{"city":"Oslo"}',
};
