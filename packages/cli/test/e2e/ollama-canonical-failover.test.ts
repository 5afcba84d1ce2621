import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, type FakeOllama, greedyReference, killMidStream, makeTinyModel, startCluster, startFakeOllama } from "@tessera/testkit";

/**
 * Issue 17 §0 across backends with Ollama, on real processes: a coordinator, a daemon on the embedded engine and a
 * daemon on Ollama, both serving the same GGUF (the fake Ollama's Modelfile names it as its blob; Ollama's templates
 * in `/api/show` are its own Go ones, so the Ollama node reads the GGUF's Jinja template from the file). When the
 * embedded daemon is SIGKILLed mid-stream, the Ollama node continues the job from the first node's prompt ids: it
 * sends `/api/generate` raw with exactly the canonical text followed by the answer so far, never `/api/chat`.
 *
 * The fake Ollama does not run the model: it answers with the embedded engine's greedy reference, continuing wherever
 * the prompt's text leaves it, so the client's joined text equals the uninterrupted run only because the prompt is
 * canonical and the prefix exact. Whether a real Ollama's greedy tokens equal the embedded engine's needs a real
 * Ollama (not available here); the prompt is what differed before.
 */
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
/** One id on both nodes: the embedded engine names a model by its file's stem, Ollama by `name:tag`. */
const MODEL = "canon:tiny";
const MESSAGES = [{ role: "user" as const, content: "Write about rivers." }];
const CANONICAL_TEXT = "<|im_start|>user\nWrite about rivers.<|im_end|>\n<|im_start|>assistant\n";

let dir: string;
let modelPath: string;
let ollama: FakeOllama;
let cluster: Cluster | undefined;
let embeddedId: string;
let ollamaId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-ollama-failover-"));
  modelPath = join(dir, `${MODEL}.gguf`);
  const made = await makeTinyModel({ path: modelPath, seed: 7, vocab: "spm", chatTemplate: CHATML });
  mkdirSync(join(dir, "blobs"));
  const blob = join(dir, "blobs", `sha256-${made.sha256}`);
  copyFileSync(modelPath, blob);
  ollama = await startFakeOllama({ installed: [{ name: MODEL, sizeBytes: made.sizeBytes, ggufPath: blob }] });
  cluster = await startCluster({ nodes: 0 });
  embeddedId = (await cluster.addNode({ modelPath })).id;
  ollamaId = (await cluster.addNode({ nodeArgs: ["--backend", "ollama", "--ollama-host", ollama.url] })).id;
}, 10 * 60_000);

afterAll(async () => {
  await cluster?.stop();
  await ollama?.http.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("failover from an embedded node to an Ollama node", () => {
  it("the Ollama node continues from the canonical text and the exact prefix, raw, and the joined text is the uninterrupted run", async () => {
    const reference = await greedyReference({ modelPath, messages: MESSAGES, maxTokens: 64 });
    // Paced, so that a kill at chunk 20 lands mid-stream whichever node serves first.
    ollama.http.setBehaviour({ reply: reference.text, tokensPerSecond: 40 });
    let continued = false;
    for (let attempt = 0; attempt < 8 && !continued; attempt++) {
      ollama.http.requests.length = 0;
      const run = await killMidStream(cluster!, { model: MODEL, messages: MESSAGES, maxTokens: 64 }, 20);
      const killed = run.killed.id === embeddedId ? "embedded" : "ollama";
      process.stderr.write(`ollama canonical failover: killed the ${killed} node at chunk 20, ${run.finishedBy === ollamaId ? "ollama" : "embedded"} finished\n`);
      if (run.killed.id === embeddedId) {
        expect(run.finishedBy).toBe(ollamaId);
        const generate = ollama.http.requests.filter((r) => r.path === "/api/generate").map((r) => r.body as { prompt: string; raw: boolean });
        expect(ollama.http.requests.some((r) => r.path === "/api/chat" && (r.body as { messages?: unknown[] }).messages?.length)).toBe(false);
        expect(generate).toHaveLength(1);
        expect(generate[0]!.raw).toBe(true);
        expect(generate[0]!.prompt.startsWith(CANONICAL_TEXT)).toBe(true);
        const prefix = generate[0]!.prompt.slice(CANONICAL_TEXT.length);
        expect(prefix.length).toBeGreaterThan(0);
        expect(reference.text.startsWith(prefix)).toBe(true);
        expect(run.text).toBe(reference.text);
        continued = true;
      }
      await run.killed.process.exited;
      await cluster!.restartNode(run.killed);
    }
    expect(continued).toBe(true);
  }, 10 * 60_000);
});
