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
  /** The words the fake answers with (before `max_tokens` cuts them). A function gets the last user message. */
  reply: string | ((lastUserMessage: string) => string);
}

export const DEFAULT_BEHAVIOUR: FakeBehaviour = {
  tokensPerSecond: 0,
  responseDelayMs: 0,
  failAfterTokens: undefined,
  dropAfterTokens: undefined,
  reply: (last) => `Hello! You said: ${last}`,
};
