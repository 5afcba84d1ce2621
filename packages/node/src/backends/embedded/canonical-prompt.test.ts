import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage, StreamPart } from "@tessera/protocol";
import { greedyReference, makeTinyModel } from "@tessera/testkit";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../adapter.js";
import { scoreForCheck } from "../../score-for-check.js";
import { createEmbeddedBackend, type EmbeddedBackend } from "./embedded-backend.js";
import { createPromptFormatter } from "./prompt-format.js";

/**
 * The embedded engine and the canonical prompt (issue 17 §0): a template-less file keeps exactly the prompt tokens it
 * had before the Jinja renderer; the engine reports the ids it ran when asked, runs given ids exactly, refuses ids
 * that are not its vocabulary's, and as a spot-check reference refuses to score after claimed ids it does not render.
 */
const MESSAGES: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Tell me about the fox" },
];
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
let dir: string;
let plainPath: string;
let templatedPath: string;
let backend: EmbeddedBackend;

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const p of parts) out.push(p);
  return out;
}
const tokensOf = (parts: StreamPart[]) => parts.flatMap((p) => (p.type === "text-delta" ? (p.tokens ?? []) : []));
const request = (patch: Partial<GenerateRequest> = {}): GenerateRequest => ({ model: "plain", messages: MESSAGES, sampling: { max_tokens: 12, temperature: 0, top_p: 1 }, ...patch });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-canonical-"));
  plainPath = (await makeTinyModel({ path: join(dir, "plain.gguf"), seed: 5, vocab: "spm" })).path;
  templatedPath = (await makeTinyModel({ path: join(dir, "templated.gguf"), seed: 5, vocab: "spm", chatTemplate: CHATML })).path;
  backend = createEmbeddedBackend({ modelPath: plainPath, threads: 1, maxSequences: 2 });
}, 60_000);
afterAll(async () => {
  await backend?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("embedded engine: canonical prompt", () => {
  it("a template-less file keeps its prompt tokens: BOS, then the fallback text tokenised without special tokens", async () => {
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: plainPath, vocabOnly: true });
    try {
      const formatter = createPromptFormatter(model);
      expect(formatter.kind).toBe("fallback");
      const before = [model.tokens.bos!, ...model.tokenize("System: Be brief.\nUser: Tell me about the fox\nAssistant:", false)];
      expect(formatter.promptTokens(MESSAGES)).toEqual(before);
      // A file with its own template renders it (BOS still first: this vocabulary adds one).
      const templated = await llama.loadModel({ modelPath: templatedPath, vocabOnly: true });
      try {
        const ids = createPromptFormatter(templated).promptTokens(MESSAGES);
        expect(ids).toEqual([templated.tokens.bos!, ...templated.tokenize("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me about the fox<|im_end|>\n<|im_start|>assistant\n", true)]);
      } finally {
        await templated.dispose();
      }
    } finally {
      await model.dispose();
      await llama.dispose();
    }
  });

  it("reports the prompt ids it ran, first, when asked; given those ids it gives the same greedy answer", async () => {
    const parts = await collect(backend.doStream(request({ reportPromptTokens: true })));
    expect(parts[0]?.type).toBe("prompt");
    const ids = (parts[0] as Extract<StreamPart, { type: "prompt" }>).tokens;
    expect(parts.find((p) => p.type === "usage")).toMatchObject({ prompt_tokens: ids.length });
    const plain = await collect(backend.doStream(request()));
    expect(plain.some((p) => p.type === "prompt")).toBe(false);
    expect(tokensOf(plain)).toEqual(tokensOf(parts));
    // Other messages, the same ids: the ids win (a continuation runs the first node's prompt, not its own rendering).
    const given = await collect(backend.doStream(request({ messages: [{ role: "user", content: "something else entirely" }], promptTokens: ids })));
    expect(tokensOf(given)).toEqual(tokensOf(parts));
    const reference = await greedyReference({ modelPath: plainPath, messages: [], promptTokens: ids, maxTokens: 12 });
    expect(tokensOf(given)).toEqual(reference.tokens);
  });

  it("refuses prompt ids outside its vocabulary, or an empty list, as bad_request", async () => {
    for (const promptTokens of [[1, 2, 10_000_000], [1, -3], []]) {
      const parts = await collect(backend.doStream(request({ promptTokens })));
      expect(parts).toEqual([{ type: "error", code: "bad_request", message: expect.stringContaining("prompt_tokens") }]);
    }
  });

  it("as a spot-check reference: scores after claimed ids it renders itself, answers prompt_mismatch to others", async () => {
    const first = await collect(backend.doStream(request({ reportPromptTokens: true })));
    const ids = (first[0] as Extract<StreamPart, { type: "prompt" }>).tokens;
    const check = { type: "check.score" as const, check_id: "c1", model: "plain", messages: MESSAGES, output_tokens: tokensOf(first) };
    expect(await scoreForCheck(backend, { ...check, prompt_tokens: ids })).toMatchObject({ type: "check.scores", prompt_tokens: ids.length });
    expect(await scoreForCheck(backend, { ...check, prompt_tokens: [...ids.slice(0, -1), 7] })).toMatchObject({ type: "check.error", reason: "prompt_mismatch" });
  });
});
