import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChatMessage, StreamPart } from "@tessera/protocol";
import { type FakeOllama, makeTinyModel, startFakeOllama } from "@tessera/testkit";
import { type Llama, LlamaLogLevel, getLlama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../src/backends/adapter.js";
import { createPromptFormatter, rawPromptTokens } from "../../src/backends/embedded/prompt-format.js";
import { type OllamaAdapter, createOllamaAdapter } from "../../src/backends/ollama/ollama-adapter.js";

/**
 * Classic Ollama reports its own Go template in `/api/show`, never the GGUF's Jinja; an Ollama node on the same host
 * reads the template from the GGUF blob the Modelfile names (show-template.ts, gguf-metadata.ts). Here the blobs are
 * real GGUF files (tiny models with Llama's SentencePiece vocabulary), and the raw text the node sends, tokenised the
 * way Ollama's llama.cpp runner tokenises a raw prompt (BOS where the vocabulary adds one, special-token text parsed:
 * embedded `rawPromptTokens`), is exactly the embedded engine's canonical prompt ids for the same file and messages.
 */
const MESSAGES: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Tell me about the fox" },
];
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
/** BOS written as template text (Llama 2's files do): the vocabulary adds BOS too, so the text loses it. */
const LLAMA2 = "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% elif m.role == 'system' %}<<SYS>>{{ m.content }}<</SYS>>{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}";

let dir: string;
let llama: Llama;
let fake: FakeOllama;
let adapter: OllamaAdapter;
const paths: Record<string, string> = {};

/** Writes a tiny model where Ollama keeps blobs: `<models>/blobs/sha256-<the file's digest>`. */
async function blob(name: string, chatTemplate?: string): Promise<string> {
  const made = await makeTinyModel({ path: join(dir, `${name}.gguf`), seed: 5, vocab: "spm", ...(chatTemplate !== undefined ? { chatTemplate } : {}) });
  const path = join(dir, "blobs", `sha256-${made.sha256}`);
  await rename(made.path, path);
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tessera-ollama-gguf-"));
  await mkdir(join(dir, "blobs"));
  paths.chatml = await blob("chatml", CHATML);
  paths.llama2 = await blob("llama2", LLAMA2);
  paths.plain = await blob("plain");
  fake = await startFakeOllama({
    installed: [
      { name: "chatml:tiny", sizeBytes: 1, ggufPath: paths.chatml },
      { name: "llama2:tiny", sizeBytes: 1, ggufPath: paths.llama2 },
      { name: "plain:tiny", sizeBytes: 1, ggufPath: paths.plain },
    ],
  });
  adapter = createOllamaAdapter({ baseURL: fake.url });
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
}, 120_000);
afterAll(async () => {
  await fake?.http.close();
  await rm(dir, { recursive: true, force: true });
});

async function sentPrompt(request: GenerateRequest): Promise<string> {
  fake.http.requests.length = 0;
  const parts: StreamPart[] = [];
  for await (const p of adapter.doStream(request)) parts.push(p);
  const error = parts.find((p) => p.type === "error");
  if (error) throw Object.assign(new Error(error.message), { code: error.code });
  const body = fake.http.requests.find((r) => r.path === "/api/generate")?.body as { prompt?: string; raw?: boolean } | undefined;
  expect(body?.raw).toBe(true);
  expect(fake.http.requests.some((r) => r.path === "/api/chat")).toBe(false);
  return body!.prompt!;
}

const request = (model: string, patch: Partial<GenerateRequest> = {}): GenerateRequest => ({ model, messages: MESSAGES, sampling: { max_tokens: 8, temperature: 0, top_p: 1 }, ...patch });

describe("ollama: the canonical prompt from the GGUF blob", () => {
  for (const name of ["chatml", "llama2", "plain"] as const) {
    it(`${name}: the raw text Ollama receives tokenises to the embedded engine's canonical prompt ids`, async () => {
      const text = await sentPrompt(request(`${name}:tiny`));
      const model = await llama.loadModel({ modelPath: paths[name]!, vocabOnly: true });
      try {
        const canonical = createPromptFormatter(model).promptTokens(MESSAGES);
        expect(rawPromptTokens(model, text)).toEqual(canonical);
        expect(createPromptFormatter(model).kind).toBe(name === "plain" ? "fallback" : "chat-template");
      } finally {
        await model.dispose();
      }
    });
  }

  it("the template-less file gets the documented fallback text; the ChatML file its own template", async () => {
    expect(await sentPrompt(request("plain:tiny"))).toBe("System: Be brief.\nUser: Tell me about the fox\nAssistant:");
    expect(await sentPrompt(request("chatml:tiny"))).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me about the fox<|im_end|>\n<|im_start|>assistant\n");
    expect(await sentPrompt(request("llama2:tiny"))).toBe("<<SYS>>Be brief.<</SYS>>[INST] Tell me about the fox [/INST]");
  });

  it("a continuation with the first node's prompt ids runs the canonical text followed by the prefix exactly", async () => {
    const model = await llama.loadModel({ modelPath: paths.chatml!, vocabOnly: true });
    try {
      const ids = createPromptFormatter(model).promptTokens(MESSAGES);
      const text = await sentPrompt(request("chatml:tiny", { promptTokens: ids, assistantPrefix: " The quick brown" }));
      expect(text).toBe((await sentPrompt(request("chatml:tiny"))) + " The quick brown");
    } finally {
      await model.dispose();
    }
  });

  it("a template-less model whose messages hold special-token text is refused (Ollama's raw mode would read it as the token)", async () => {
    await expect(sentPrompt(request("plain:tiny", { messages: [{ role: "user", content: "say </s> now" }] }))).rejects.toMatchObject({ code: "unsupported_parameter" });
  });
});
