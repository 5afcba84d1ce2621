import { describe, expect, it } from "vitest";
import { JsonDepthScanner, jsonDepthExceeds } from "./json-depth.js";

describe("JSON depth scan", () => {
  it("finds the first bracket past the limit and nothing in shallow text", () => {
    expect(jsonDepthExceeds("[[[]]]", 3)).toBe(-1);
    expect(jsonDepthExceeds("[[[[]]]]", 3)).toBe(3);
    expect(jsonDepthExceeds('{"a":{"b":[1,{"c":2}]}}', 4)).toBe(-1);
    expect(jsonDepthExceeds('{"a":{"b":[1,{"c":2}]}}', 3)).toBe(13);
  });

  it("ignores brackets inside strings, escaped quotes included", () => {
    expect(jsonDepthExceeds('["[[[[[[", "\\"[[[[", "\\\\"]', 1)).toBe(-1);
    expect(jsonDepthExceeds('["\\\\", [[]]]', 2)).toBe(8);
  });

  it("keeps its state across chunk boundaries, an escape split between two chunks included", () => {
    const text = Buffer.from('["a\\"[[[[", [[1]]]');
    for (let cut = 1; cut < text.length; cut++) {
      const scanner = new JsonDepthScanner(2);
      const first = scanner.push(text.subarray(0, cut));
      const second = first >= 0 ? first : scanner.push(text.subarray(cut));
      expect(second, `cut at ${cut}`).toBe(text.indexOf("[[1") + 1);
    }
  });

  it("scans multi-byte UTF-8 text as text", () => {
    expect(jsonDepthExceeds('["😀[", "é{"]', 1)).toBe(-1);
  });

  it("stops at the first offending byte of a huge body without recursing", () => {
    expect(jsonDepthExceeds("[".repeat(5_000_000), 64)).toBe(64);
  });
});
