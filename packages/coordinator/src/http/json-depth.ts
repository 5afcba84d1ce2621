/** Deepest nesting of arrays and objects a request body may have. Real requests stay under 10. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/**
 * Finds where JSON text first nests deeper than `limit`, chunk by chunk as the body arrives, so a hostile body is
 * refused at its first few kilobytes instead of after all of it has been buffered and parsed. One linear pass that
 * never recurses: brackets are counted outside strings (a backslash inside a string escapes the next byte). It works
 * on UTF-8 bytes, where every byte of a multi-byte character is ≥ 0x80 and so never looks like a bracket or a quote.
 * It does not validate the JSON; JSON.parse does that afterwards, on text known to be shallow.
 */
export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private offset = 0;

  constructor(private readonly limit = MAX_JSON_DEPTH) {}

  /** Scans the next chunk; returns the byte offset (from the start of the body) of the first bracket too deep, or -1. */
  push(chunk: Uint8Array): number {
    let { depth, inString, escaped } = this;
    const limit = this.limit;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) {
        inString = true;
      } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        if (++depth > limit) return this.offset + i;
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
        depth--;
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    this.offset += chunk.length;
    return -1;
  }
}

/** `JsonDepthScanner` over a whole text at once: the offset where it first nests deeper than `limit`, or -1. */
export function jsonDepthExceeds(text: string, limit = MAX_JSON_DEPTH): number {
  return new JsonDepthScanner(limit).push(Buffer.from(text, "utf8"));
}
