/** Deepest nesting of arrays and objects a request body may have. Real requests stay under 10. */
export const MAX_JSON_DEPTH = 64;

/**
 * Where JSON text first nests deeper than `limit` (a character offset), or -1 when it never does. One linear pass
 * that does not recurse and stops at the first offending bracket: brackets are counted outside strings (a backslash escapes the next character inside one). It does not validate
 * the JSON; JSON.parse does that afterwards, on text known to be shallow enough that parsing it is cheap.
 */
export function jsonDepthExceeds(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return i;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return -1;
}
