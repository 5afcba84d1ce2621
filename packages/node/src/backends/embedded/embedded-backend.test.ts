import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage, StreamPart } from "@tessera/protocol";
import { greedyReference, makeTinyModel } from "@tessera/testkit";
import { EXACT_REPLAY_MAX_TOKENS } from "../exact-replay.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../adapter.js";
import { createEmbeddedBackend } from "./embedded-backend.js";
import { formatFallbackPrompt } from "./prompt-format.js";

let dir: string;
let spmPath: string;
let bytesPath: string;
const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Tell me a story about a fox." },
];

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
const deltas = (parts: StreamPart[]) => parts.flatMap((p) => (p.type === "text-delta" ? [p] : []));
const textOf = (parts: StreamPart[]) => deltas(parts).map((p) => p.text).join("");
const tokensOf = (parts: StreamPart[]) => deltas(parts).flatMap((p) => p.tokens ?? []);
const usageOf = (parts: StreamPart[]) => parts.find((p) => p.type === "usage");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-embedded-"));
  spmPath = (await makeTinyModel({ path: join(dir, "tiny-spm.gguf"), seed: 5, vocab: "spm" })).path;
  bytesPath = (await makeTinyModel({ path: join(dir, "tiny-bytes.gguf"), seed: 7, vocab: "bytes" })).path;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("embedded backend on a tiny SPM model", () => {
  const backend = () => shared;
  let shared: ReturnType<typeof createEmbeddedBackend>;
  const request = (patch: Partial<GenerateRequest> = {}): GenerateRequest => ({
    model: "tiny-spm",
    messages: MESSAGES,
    sampling: { max_tokens: 64, temperature: 0, top_p: 1 },
    ...patch,
  });

  beforeAll(async () => {
    shared = createEmbeddedBackend({ modelPath: spmPath, threads: 1, maxSequences: 2 });
    expect(await shared.listModels()).toEqual([{ id: "tiny-spm", sizeBytes: expect.any(Number), loaded: false, scoring: true, constrainedScoring: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), features: expect.arrayContaining(["chat", "raw_prompt", "logprobs"]) }]);
    await shared.load();
  });
  afterAll(async () => {
    await shared.close();
  });

  it("lists the model as loaded and reports healthy", async () => {
    expect(await backend().health()).toEqual({ ok: true });
    expect((await backend().listModels())[0]).toMatchObject({ id: "tiny-spm", loaded: true });
  });

  it("greedy output is deterministic and equals node-llama-cpp's own greedy run, with real usage", async () => {
    const a = await collect(backend().doStream(request()));
    const b = await collect(backend().doStream(request()));
    const reference = await greedyReference({ modelPath: spmPath, messages: MESSAGES, maxTokens: 64 });
    expect(textOf(a)).toBe(reference.text);
    expect(tokensOf(a)).toEqual(reference.tokens);
    expect(textOf(b)).toBe(textOf(a));
    expect(reference.text).toMatch(/[a-z]{3}/);
    expect(usageOf(a)).toEqual({ type: "usage", prompt_tokens: reference.promptTokens, completion_tokens: 64 });
    expect(reference.completionTokens).toBe(64);
    expect(a.at(-1)).toEqual({ type: "finish", reason: "length" });
    // prompt_tokens counts the template's tokens: BOS + the fallback text.
    expect(reference.promptTokens).toBeGreaterThan(formatFallbackPrompt(MESSAGES).split(" ").length);
  });

  it("a greedy answer carries each token's log-probability unasked (for the trust checks), as logprobs:true reports them", async () => {
    const plain = deltas(await collect(backend().doStream(request({ sampling: { max_tokens: 24, temperature: 0, top_p: 1 } }))));
    const asked = deltas(await collect(backend().doStream(request({ sampling: { max_tokens: 24, temperature: 0, top_p: 1, logprobs: true } }))));
    expect(plain.flatMap((d) => d.tokens ?? [])).toEqual(asked.flatMap((d) => d.tokens ?? []));
    const unasked = plain.flatMap((d) => d.logprobs ?? []);
    expect(unasked).toHaveLength(24);
    const reported = asked.flatMap((d) => d.logprobs ?? []);
    unasked.forEach((lp, i) => expect(lp).toBeCloseTo(reported[i]!, 4));
    expect(plain.every((d) => d.token_logprobs === undefined)).toBe(true);
    // Sampled answers are checked without them (trust/sampled-check.ts), so they carry none.
    const sampled = deltas(await collect(backend().doStream(request({ sampling: { max_tokens: 8, temperature: 0.8, top_p: 1, seed: 3 } }))));
    expect(sampled.every((d) => d.logprobs === undefined)).toBe(true);
  });

  it("stops at max_tokens with exactly that many completion tokens", async () => {
    const parts = await collect(backend().doStream(request({ sampling: { max_tokens: 5, temperature: 0, top_p: 1 } })));
    expect(tokensOf(parts)).toHaveLength(5);
    expect(usageOf(parts)).toMatchObject({ completion_tokens: 5 });
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "length" });
  });

  it("continues from another node's prefix tokens so that the joined text equals the uninterrupted run", async () => {
    const full = await collect(backend().doStream(request()));
    const fullText = textOf(full);
    const fullTokens = tokensOf(full);
    for (const k of [1, 7, 20, 31, 45, 63]) {
      // The earlier node sent whole deltas: take the deltas covering the first k tokens.
      let prefixText = "";
      const prefixTokens: number[] = [];
      for (const d of deltas(full)) {
        if (prefixTokens.length >= k) break;
        prefixText += d.text;
        prefixTokens.push(...(d.tokens ?? []));
      }
      const rest = await collect(
        backend().doStream(
          request({
            assistantPrefix: prefixText,
            assistantPrefixTokens: prefixTokens,
            sampling: { max_tokens: 64 - prefixTokens.length, temperature: 0, top_p: 1 },
          }),
        ),
      );
      expect(prefixText + textOf(rest), `split after ${prefixTokens.length} tokens`).toBe(fullText);
      expect([...prefixTokens, ...tokensOf(rest)]).toEqual(fullTokens);
      expect(usageOf(rest)).toMatchObject({ completion_tokens: 64 - prefixTokens.length });
    }
  });

  it("replays a short prefix token by token, so a long answer joined after it still equals the uninterrupted run", async () => {
    // Batch-evaluating prompt + prefix flips a near tie a hundred or so tokens later on this 50m model; replaying the
    // prefix as the first node generated it does not (design.md, "Long prefixes").
    const path = (await makeTinyModel({ path: join(dir, "long-50m.gguf"), seed: 11, preset: "50m", vocab: "spm" })).path;
    const long = createEmbeddedBackend({ modelPath: path, threads: 1, maxSequences: 1 });
    try {
      const messages = [{ role: "user" as const, content: "Tell me about mountains and rivers." }];
      const ask = (patch: Partial<GenerateRequest>): GenerateRequest => ({ model: "long-50m", messages, sampling: { max_tokens: 200, temperature: 0, top_p: 1 }, ...patch });
      const full = await collect(long.doStream(ask({})));
      const fullTokens = tokensOf(full);
      expect(fullTokens).toHaveLength(200);
      for (const k of [12, 30, EXACT_REPLAY_MAX_TOKENS]) {
        const prefixTokens = fullTokens.slice(0, k);
        const rest = await collect(long.doStream(ask({ assistantPrefixTokens: prefixTokens, sampling: { max_tokens: 200 - k, temperature: 0, top_p: 1 } })));
        expect([...prefixTokens, ...tokensOf(rest)], `split after ${k} tokens`).toEqual(fullTokens);
      }
    } finally {
      await long.close();
    }
  }, 120_000);

  it("continues from prefix text alone (no token ids) without repeating it", async () => {
    const full = await collect(backend().doStream(request()));
    const first = deltas(full)[0];
    const rest = await collect(
      backend().doStream(request({ assistantPrefix: first.text, sampling: { max_tokens: 63, temperature: 0, top_p: 1 } })),
    );
    // One canonical token: re-tokenising its text gives the same id, so this join is exact too.
    expect(first.text + textOf(rest)).toBe(textOf(full));
  });

  it("ignores prefix token ids that do not spell the prefix text (another vocabulary) and uses the text", async () => {
    const full = await collect(backend().doStream(request()));
    const first = deltas(full)[0];
    const rest = await collect(
      backend().doStream(
        request({ assistantPrefix: first.text, assistantPrefixTokens: [3, 4, 5], sampling: { max_tokens: 63, temperature: 0, top_p: 1 } }),
      ),
    );
    expect(first.text + textOf(rest)).toBe(textOf(full));
  });

  it("serves concurrent requests on separate sequences, each equal to the sequential result", async () => {
    const sequential = textOf(await collect(backend().doStream(request({ sampling: { max_tokens: 24, temperature: 0, top_p: 1 } }))));
    const other: ChatMessage[] = [{ role: "user", content: "Something else entirely" }];
    const otherSequential = textOf(await collect(backend().doStream(request({ messages: other, sampling: { max_tokens: 24, temperature: 0, top_p: 1 } }))));
    // Three requests on a pool of two sequences: the third waits for a free one.
    const results = await Promise.all([
      collect(backend().doStream(request({ sampling: { max_tokens: 24, temperature: 0, top_p: 1 } }))),
      collect(backend().doStream(request({ messages: other, sampling: { max_tokens: 24, temperature: 0, top_p: 1 } }))),
      collect(backend().doStream(request({ sampling: { max_tokens: 24, temperature: 0, top_p: 1 } }))),
    ]);
    expect(results.map(textOf)).toEqual([sequential, otherSequential, sequential]);
  });

  it("sampling with a seed is reproducible", async () => {
    const sampling = { max_tokens: 32, temperature: 1.5, top_p: 0.95, seed: 42 };
    const a = textOf(await collect(backend().doStream(request({ sampling }))));
    const b = textOf(await collect(backend().doStream(request({ sampling }))));
    expect(a).toBe(b);
    expect(a.length).toBeGreaterThan(0);
  });

  it("aborting mid-stream ends with the usage so far and finish cancelled", async () => {
    const controller = new AbortController();
    const parts: StreamPart[] = [];
    for await (const p of backend().doStream(request({ signal: controller.signal, sampling: { max_tokens: 400, temperature: 0, top_p: 1 } }))) {
      parts.push(p);
      if (deltas(parts).length === 5) controller.abort();
    }
    const usage = usageOf(parts);
    expect(usage && usage.type === "usage" && usage.completion_tokens).toBe(tokensOf(parts).length);
    expect(tokensOf(parts).length).toBeGreaterThanOrEqual(5);
    expect(tokensOf(parts).length).toBeLessThan(10);
    expect(parts.at(-1)).toEqual({ type: "finish", reason: "cancelled" });
    // The sequence went back to the pool: the backend still serves.
    expect(textOf(await collect(backend().doStream(request({ sampling: { max_tokens: 3, temperature: 0, top_p: 1 } }))))).not.toBe("");
  });

  it("an already-aborted request generates nothing", async () => {
    const parts = await collect(backend().doStream(request({ signal: AbortSignal.abort() })));
    expect(parts).toEqual([
      { type: "usage", prompt_tokens: 0, completion_tokens: 0 },
      { type: "finish", reason: "cancelled" },
    ]);
  });

  it("a model it does not serve is a model_not_found part", async () => {
    const parts = await collect(backend().doStream(request({ model: "gpt-4o" })));
    expect(parts).toEqual([{ type: "error", code: "model_not_found", message: expect.stringContaining("tiny-spm") }]);
  });

  it("doGenerate returns the streamed text and usage", async () => {
    const result = await backend().doGenerate(request({ sampling: { max_tokens: 10, temperature: 0, top_p: 1 } }));
    const streamed = await collect(backend().doStream(request({ sampling: { max_tokens: 10, temperature: 0, top_p: 1 } })));
    expect(result.text).toBe(textOf(streamed));
    expect(result.usage.completion_tokens).toBe(10);
    expect(result.finishReason).toBe("length");
  });
});

describe("embedded backend: end of generation, templates and failures", () => {
  it("announces a file whose name no coordinator would accept as a model id under a valid one", async () => {
    const path = join(dir, "My Model (v2).gguf");
    await copyFile(spmPath, path);
    const backend = createEmbeddedBackend({ modelPath: path, threads: 1 });
    try {
      expect((await backend.listModels()).map((m) => m.id)).toEqual(["My-Model-v2"]);
    } finally {
      await backend.close();
    }
  });

  it("stops at the end-of-sequence token with finish stop, never emitting it", async () => {
    // A model whose EOS row is scaled up ends its answers after a few dozen tokens.
    const path = (await makeTinyModel({ path: join(dir, "ends.gguf"), seed: 7, vocab: "bytes", eosScale: 2.5 })).path;
    const backend = createEmbeddedBackend({ modelPath: path, threads: 1 });
    try {
      const messages: ChatMessage[] = [{ role: "user", content: "What is 2+2?" }];
      const parts = await collect(backend.doStream({ model: "ends", messages, sampling: { max_tokens: 500, temperature: 0, top_p: 1 } }));
      const reference = await greedyReference({ modelPath: path, messages, maxTokens: 500 });
      expect(tokensOf(parts)).toEqual(reference.tokens);
      expect(parts.at(-1)).toEqual({ type: "finish", reason: "stop" });
      const usage = usageOf(parts);
      expect(usage && usage.type === "usage" && usage.completion_tokens).toBeLessThan(500);
      expect(tokensOf(parts)).not.toContain(2); // </s>
      expect(usage && usage.type === "usage" && usage.completion_tokens).toBe(tokensOf(parts).length);
    } finally {
      await backend.close();
    }
  });

  it("byte-level output (UTF-8 split across tokens) streams and continues exactly", async () => {
    const backend = createEmbeddedBackend({ modelPath: bytesPath, threads: 1 });
    try {
      const messages: ChatMessage[] = [{ role: "user", content: "Grüße, 世界" }];
      const sampling = { max_tokens: 48, temperature: 0, top_p: 1 };
      const full = await collect(backend.doStream({ model: "tiny-bytes", messages, sampling }));
      const reference = await greedyReference({ modelPath: bytesPath, messages, maxTokens: 48 });
      expect(textOf(full)).toBe(reference.text);
      expect(tokensOf(full)).toEqual(reference.tokens);
      // Every delta boundary is a possible failover point: the (text, tokens) sent so far must always continue exactly.
      const parts = deltas(full);
      expect(parts.length).toBeGreaterThan(5);
      for (let i = 1; i < parts.length; i++) {
        const prefixText = parts.slice(0, i).map((d) => d.text).join("");
        const prefixTokens = parts.slice(0, i).flatMap((d) => d.tokens ?? []);
        const rest = await collect(
          backend.doStream({
            model: "tiny-bytes",
            messages,
            assistantPrefix: prefixText,
            assistantPrefixTokens: prefixTokens,
            sampling: { ...sampling, max_tokens: 48 - prefixTokens.length },
          }),
        );
        expect(prefixText + textOf(rest), `split after delta ${i}`).toBe(reference.text);
        expect([...prefixTokens, ...tokensOf(rest)]).toEqual(reference.tokens);
      }
    } finally {
      await backend.close();
    }
  });

  it("uses the GGUF's chat template when it has one", async () => {
    const chatml =
      "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
    const path = (await makeTinyModel({ path: join(dir, "templated.gguf"), seed: 5, vocab: "spm", chatTemplate: chatml })).path;
    const templated = createEmbeddedBackend({ modelPath: path, threads: 1 });
    const plain = createEmbeddedBackend({ modelPath: spmPath, threads: 1 });
    try {
      const sampling = { max_tokens: 8, temperature: 0, top_p: 1 };
      const a = await collect(templated.doStream({ model: "templated", messages: MESSAGES, sampling }));
      const b = await collect(plain.doStream({ model: "tiny-spm", messages: MESSAGES, sampling }));
      // Same weights, different prompt tokens: the template was applied.
      expect(usageOf(a)).not.toEqual(usageOf(b));
      expect(a.at(-1)).toEqual({ type: "finish", reason: "length" });
      const reference = await greedyReference({ modelPath: path, messages: MESSAGES, maxTokens: 8 });
      expect(textOf(a)).toBe(reference.text);
      expect(usageOf(a)).toMatchObject({ prompt_tokens: reference.promptTokens });
    } finally {
      await templated.close();
      await plain.close();
    }
  });

  it("a missing model file is a clear model_not_found error naming the path", async () => {
    const missing = join(dir, "nope.gguf");
    const backend = createEmbeddedBackend({ modelPath: missing });
    expect(await backend.health()).toEqual({ ok: false, message: expect.stringContaining(missing) });
    await expect(backend.listModels()).rejects.toMatchObject({ code: "model_not_found" });
    const parts = await collect(backend.doStream({ model: "nope", messages: MESSAGES, sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }));
    expect(parts).toEqual([{ type: "error", code: "model_not_found", message: `model file not found: ${missing}` }]);
    await expect(backend.load()).rejects.toMatchObject({ code: "model_not_found" });
  });

  it("a file that is not a GGUF model is an internal_error part naming the path, and the backend retries later", async () => {
    const bad = join(dir, "broken.gguf");
    await writeFile(bad, "this is not a model");
    const backend = createEmbeddedBackend({ modelPath: bad, threads: 1 });
    try {
      const parts = await collect(backend.doStream({ model: "broken", messages: MESSAGES, sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }));
      expect(parts).toEqual([{ type: "error", code: "internal_error", message: expect.stringContaining(bad) }]);
      // The operator replaces the file: the next request loads it, no restart needed.
      await copyFile(spmPath, bad);
      const retried = await collect(backend.doStream({ model: "broken", messages: MESSAGES, sampling: { max_tokens: 4, temperature: 0, top_p: 1 } }));
      expect(usageOf(retried)).toMatchObject({ completion_tokens: 4 });
    } finally {
      await backend.close();
    }
  });

  it("rejects bad options at construction with bad_request", () => {
    expect(() => createEmbeddedBackend({ modelPath: spmPath, threads: 0 })).toThrow(expect.objectContaining({ code: "bad_request" }));
    expect(() => createEmbeddedBackend({ modelPath: spmPath, maxSequences: 1.5 })).toThrow(expect.objectContaining({ code: "bad_request" }));
  });
});
