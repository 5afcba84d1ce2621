import { describe, expect, it } from "vitest";
import {
  EmbedRequest,
  EmbedResult,
  EmbeddingsRequest,
  MAX_EMBEDDING_INPUTS,
  MAX_EMBEDDING_VALUES,
  checkEmbedResult,
  decodeEmbedding,
  embeddingTokenBound,
  encodeEmbedding,
  unsupportedEmbeddingField,
} from "./embeddings.js";
import { CoordinatorMessage, NodeMessage } from "./session.js";

const parse = (input: unknown) => EmbeddingsRequest.safeParse({ model: "m", input });
const firstIssue = (input: unknown) => {
  const r = parse(input);
  return r.success ? undefined : { path: r.error.issues[0]!.path.join("."), message: r.error.issues[0]!.message };
};

describe("the OpenAI embeddings request", () => {
  it("takes OpenAI's four input shapes, normalised to texts or token lists", () => {
    expect(parse("hi").data?.input).toEqual({ texts: ["hi"] });
    expect(parse(["a", "b"]).data?.input).toEqual({ texts: ["a", "b"] });
    expect(parse([1, 2, 3]).data?.input).toEqual({ tokens: [[1, 2, 3]] });
    expect(parse([[1], [2, 3]]).data?.input).toEqual({ tokens: [[1], [2, 3]] });
    expect(parse(Array.from({ length: MAX_EMBEDDING_INPUTS }, () => "a")).success).toBe(true);
  });

  it.each([
    ["", "input", /empty string/],
    [[], "input", /empty list/],
    [[[]], "input.0", /empty list of tokens/],
    [Array.from({ length: MAX_EMBEDDING_INPUTS + 1 }, () => "a"), "input", /at most 2048/],
    [null, "input", /string, a list of strings/],
    [{ text: "a" }, "input", /string, a list of strings/],
    [[{}], "input.0", /strings, token ids or lists/],
    [["a", 2], "input.1", /string/],
    [[1, "a"], "input.1", /number/],
    [[[1], "a"], "input.1", /array/],
    ["a\u0000b", "input", /NUL/],
    [["ok", "\u0000"], "input.1", /NUL/],
    [[2 ** 31], "input.0", /at most 2147483647/],
    [[1e300], "input.0", /at most|integers/],
    [[-1], "input.0", /not negative/],
    [[0.5], "input.0", /integers/],
    [[[1, Number.NaN]], "input.0.1", /number|integers/],
  ])("refuses %j naming %s", (input, path, message) => {
    const issue = firstIssue(input);
    expect(issue?.path).toBe(path);
    expect(issue?.message).toMatch(message);
  });

  it("names the fields it cannot honour: dimensions as unsupported_parameter, unknown ones as bad_request; user is ignored", () => {
    expect(unsupportedEmbeddingField({ model: "m", input: "a", dimensions: 256 })).toMatchObject({ param: "dimensions", code: "unsupported_parameter" });
    expect(unsupportedEmbeddingField({ model: "m", input: "a", top_k: 3 })).toMatchObject({ param: "top_k", code: "bad_request" });
    expect(unsupportedEmbeddingField({ model: "m", input: "a", user: "x", encoding_format: "base64", dimensions: null })).toBeUndefined();
    expect(EmbeddingsRequest.safeParse({ model: "m", input: "a", encoding_format: "binary" }).success).toBe(false);
  });
});

describe("vectors on the wire", () => {
  it("base64 of little-endian float32 round-trips (what OpenAI's encoding_format base64 is)", () => {
    const v = [0.25, -1.5, 3.4028234663852886e38, 1e-45];
    expect(Array.from(decodeEmbedding(encodeEmbedding(v))!)).toEqual(Array.from(Float32Array.from(v)));
    expect(encodeEmbedding([1])).toBe("AACAPw==");
    expect(decodeEmbedding("AACA")).toBeUndefined();
    expect(decodeEmbedding("not base64!")).toBeUndefined();
  });

  it("embed.request and embed.result/error are session messages; the result schema bounds what a node sends", () => {
    const req = { type: "embed.request", request_id: "r-1", model: "m", input: { texts: ["a"] } };
    expect(CoordinatorMessage.safeParse(req).success).toBe(true);
    expect(EmbedRequest.safeParse({ ...req, input: { texts: ["a"], tokens: [[1]] } }).success).toBe(false);
    const res = { type: "embed.result", request_id: "r-1", dimensions: 1, embeddings: [encodeEmbedding([1])], prompt_tokens: 2 };
    expect(NodeMessage.safeParse(res).success).toBe(true);
    expect(NodeMessage.safeParse({ type: "embed.error", request_id: "r-1", code: "bad_request", message: "too long" }).success).toBe(true);
    expect(NodeMessage.safeParse({ type: "embed.error", request_id: "r-1", code: "made_up", message: "x" }).success).toBe(false);
    expect(EmbedResult.safeParse({ ...res, dimensions: 0 }).success).toBe(false);
    expect(EmbedResult.safeParse({ ...res, dimensions: 100_000 }).success).toBe(false);
    expect(EmbedResult.safeParse({ ...res, prompt_tokens: -1 }).success).toBe(false);
    expect(EmbedResult.safeParse({ ...res, embeddings: ["<script>"] }).success).toBe(false);
    expect(EmbedResult.safeParse({ ...res, embeddings: [] }).success).toBe(false);
    expect(EmbedResult.safeParse({ ...res, request_id: "../x" }).success).toBe(false);
  });
});

describe("checkEmbedResult: what a node's answer must be", () => {
  const input = { texts: ["ab", "c"] };
  const result = (embeddings: string[], dimensions = 2, prompt_tokens = 3) => EmbedResult.parse({ type: "embed.result", request_id: "r", dimensions, embeddings, prompt_tokens });

  it("accepts one finite vector of the announced dimension per input", () => {
    const checked = checkEmbedResult(result([encodeEmbedding([1, 0]), encodeEmbedding([0, 1])]), input);
    expect(checked).toMatchObject({ ok: true, promptTokens: 3 });
    if (checked.ok) expect(checked.vectors.map((v) => Array.from(v))).toEqual([[1, 0], [0, 1]]);
  });

  it.each([
    ["too few vectors", result([encodeEmbedding([1, 0])]), /1 vectors for 2 inputs/],
    ["too many vectors", result([encodeEmbedding([1, 0]), encodeEmbedding([1, 0]), encodeEmbedding([1, 0])]), /3 vectors for 2 inputs/],
    ["a short vector", result([encodeEmbedding([1, 0]), encodeEmbedding([1])]), /vector 1 has 1 numbers, not the 2/],
    ["NaN", result([encodeEmbedding([1, 0]), encodeEmbedding([Number.NaN, 0])]), /not finite/],
    ["Infinity", result([encodeEmbedding([Number.POSITIVE_INFINITY, 0]), encodeEmbedding([1, 0])]), /vector 0 .*not finite/],
    ["a partial float", result([encodeEmbedding([1, 0]), "AACAPwA="]), /not base64 of float32/],
    ["more tokens than the input can have", result([encodeEmbedding([1, 0]), encodeEmbedding([0, 1])], 2, 2 + 1 + 2 * 4 + 1), /claimed 12 prompt tokens; the input has at most 11/],
  ])("refuses %s", (_what, answer, reason) => {
    const checked = checkEmbedResult(answer, input);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.reason).toMatch(reason);
  });

  it("refuses an answer of more numbers than one frame may carry, and bounds token counts by bytes and ids", () => {
    const many = { texts: Array.from({ length: 2048 }, () => "a") };
    const dims = Math.floor(MAX_EMBEDDING_VALUES / 2048) + 1;
    const answer = EmbedResult.parse({ type: "embed.result", request_id: "r", dimensions: dims, embeddings: many.texts.map(() => "AAAA"), prompt_tokens: 1 });
    expect(checkEmbedResult(answer, many)).toMatchObject({ ok: false, reason: expect.stringMatching(/more than/) });
    expect(embeddingTokenBound({ texts: ["é"] })).toBe(2 + 4);
    expect(embeddingTokenBound({ tokens: [[1, 2, 3], [4]] })).toBe(3 + 4 + 1 + 4);
  });
});
