import { describe, expect, it } from "vitest";
import { createLlamaServerEngine } from "./llama-server-engine.js";

/**
 * The llama-server engine against a fake that answers as llama-server v0.5.0 does where its greedy token ends in an
 * incomplete UTF-8 character (a byte-fallback token, here id 242 = <0xEF>): no `completion_probabilities` for it
 * (measured on the real server; its ordinary answers are covered by test/backends/llama-server-engine.test.ts).
 */
const LEAD_BYTE = 242;
const EOS = 2;

/** The model: after any context, token 242 first, then 10, 11, … (log-probabilities −0.5, −1, …), EOS last but one. */
function topAfter(): Array<{ id: number; logprob: number }> {
  return [LEAD_BYTE, 10, 11, 12, EOS, 13].map((id, i) => ({ id, logprob: -0.5 * (i + 1) }));
}

function fakeServer(options: { stuck?: boolean } = {}) {
  const requests: Array<Record<string, unknown>> = [];
  const fetch: typeof globalThis.fetch = async (_url, init) => {
    const body = JSON.parse(String(init?.body)) as { prompt: number[]; n_predict: number; logit_bias?: Array<[number, boolean]> };
    requests.push(body);
    const banned = new Set((body.logit_bias ?? []).map(([id]) => id));
    if (body.n_predict === 1) {
      const sampled = options.stuck ? LEAD_BYTE : topAfter().find((t) => !banned.has(t.id))!.id;
      // The real server holds back the probabilities of an incomplete UTF-8 character.
      if (sampled === LEAD_BYTE || options.stuck) return Response.json({ tokens: [sampled], stop_type: "limit" });
      return Response.json({ tokens: [sampled], stop_type: "limit", completion_probabilities: [{ id: sampled, logprob: -1, top_logprobs: topAfter() }] });
    }
    // A generation of 242, 10, 11: the lead byte's entry is never sent.
    const top = topAfter();
    return Response.json({ tokens: [LEAD_BYTE, 10, 11], stop_type: "limit", completion_probabilities: [10, 11].map((id) => ({ id, logprob: top.find((t) => t.id === id)!.logprob, top_logprobs: top })) });
  };
  return { fetch, requests, engine: createLlamaServerEngine({ baseURL: "http://fake", eosToken: EOS, vocabSize: 300, fetch }) };
}

describe("the llama-server engine where the greedy token is an incomplete UTF-8 character", () => {
  it("scores that position by asking again with the sampled token banned, and reports the raw top list it then gets", async () => {
    const { engine, requests } = fakeServer();
    const scores = await engine.score([1, 5], [LEAD_BYTE, 11]);
    expect(scores.positions.map((p) => [p.token, p.rank, p.logprob])).toEqual([
      [LEAD_BYTE, 1, -0.5],
      [11, 3, -1.5],
    ]);
    expect(scores.positions[0]!.top.map((t) => t.token)).toEqual([LEAD_BYTE, 10, 11, 12, EOS, 13]);
    expect(scores.eos).toMatchObject({ token: EOS, logprob: -2.5, rank: 5 });
    // Each position twice: once plain, once with the lead byte banned from sampling.
    expect(requests.map((r) => r.logit_bias)).toEqual([undefined, [[LEAD_BYTE, false]], undefined, [[LEAD_BYTE, false]], undefined, [[LEAD_BYTE, false]]]);
    expect(requests.map((r) => (r.prompt as number[]).length)).toEqual([2, 2, 3, 3, 4, 4]);
  });

  it("gives up with internal_error where the server never sends probabilities", async () => {
    const { engine } = fakeServer({ stuck: true });
    await expect(engine.score([1, 5], [10])).rejects.toMatchObject({ code: "internal_error", message: expect.stringMatching(/no top_logprobs/) });
  });

  it("takes a generation's log-probabilities from the server's own scores when it held an entry back", async () => {
    const { engine } = fakeServer();
    const gen = await engine.generate([1, 5], { maxTokens: 3 });
    expect(gen.tokens).toEqual([LEAD_BYTE, 10, 11]);
    expect(gen.finishReason).toBe("length");
    expect(gen.logprobs.map((l) => [l.token, l.logprob, l.top.length])).toEqual([
      [LEAD_BYTE, -0.5, 5],
      [10, -1, 5],
      [11, -1.5, 5],
    ]);
  });
});
