import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json.js";

describe("canonicalJson (RFC 8785)", () => {
  it("writes the RFC's own example (§3.2.2) byte for byte", () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
    );
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it("sorts keys by UTF-16 code units, not code points (the RFC's §3.2.3 example)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // U+1F600 is written as the surrogates D83D DE00, which sort before U+FB33 (by code point it would come after).
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it.each<[number, string]>([
    [0, "0"],
    [-0, "0"],
    [1, "1"],
    [-1.5, "-1.5"],
    [4.5, "4.5"],
    [0.002, "0.002"],
    [0.000001, "0.000001"],
    [1e-7, "1e-7"],
    [1e20, "100000000000000000000"],
    [1e21, "1e+21"],
    [9007199254740991, "9007199254740991"],
    [333333333.33333329, "333333333.3333333"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
  ])("writes the number %s as %s", (n, text) => {
    expect(canonicalJson(n)).toBe(text);
  });

  it("sorts nested objects, keeps array order, drops undefined members and writes no whitespace", () => {
    expect(canonicalJson({ b: [3, { z: 1, a: null }], a: { y: "x", x: true }, u: undefined })).toBe('{"a":{"x":true,"y":"x"},"b":[3,{"a":null,"z":1}]}');
    expect(canonicalJson([])).toBe("[]");
    expect(canonicalJson({})).toBe("{}");
  });

  it("gives the same bytes whatever order the keys were inserted in", () => {
    expect(canonicalJson({ a: 1, b: { c: 2, d: 3 } })).toBe(canonicalJson({ b: { d: 3, c: 2 }, a: 1 }));
  });

  it("refuses what has no canonical form", () => {
    expect(() => canonicalJson(Number.NaN)).toThrow(RangeError);
    expect(() => canonicalJson(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => canonicalJson("\ud800")).toThrow(RangeError);
    expect(() => canonicalJson({ "\udc00": 1 })).toThrow(RangeError);
    expect(() => canonicalJson(1n)).toThrow(TypeError);
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
    // A proper surrogate pair is one character and is fine.
    expect(canonicalJson("\ud83d\ude00")).toBe('"\ud83d\ude00"');
  });
});
