/**
 * RFC 8785 (JSON Canonicalization Scheme) for the values Tessera signs: object keys sorted by UTF-16 code units, no
 * whitespace, strings and numbers as ECMAScript's `JSON.stringify` writes them (which is what RFC 8785 §3.2.2 asks
 * for). Refuses what has no canonical form: non-finite numbers, lone surrogates, `undefined`, functions, bigints.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new RangeError(`canonical JSON has no form for ${value}`);
      return JSON.stringify(value);
    case "string":
      if (/\p{Cs}/u.test(value)) throw new RangeError("canonical JSON refuses a string with a lone surrogate");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
      const keys = Object.keys(value).sort();
      const members: string[] = [];
      for (const key of keys) {
        const member = (value as Record<string, unknown>)[key];
        if (member === undefined) continue;
        members.push(`${canonicalJson(key)}:${canonicalJson(member)}`);
      }
      return `{${members.join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON has no form for a ${typeof value}`);
  }
}
