import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type Cluster, greedyReference, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * Must-show 1 of the foundation issue, on real processes: a coordinator and two daemons running the embedded
 * llama.cpp engine on a generated model; the official `openai` client streams at temperature 0 and gets exactly what
 * node-llama-cpp produces greedily in-process on the same file, with matching usage counts.
 */
let dir: string;
let cluster: Cluster;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-e2e-"));
  modelPath = join(dir, "tessera-tiny.gguf");
  await makeTinyModel({ path: modelPath, seed: 42, vocab: "spm" });
  cluster = await startCluster({ nodes: 2, modelPath });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a coordinator and two daemons as real processes", () => {
  it("streams through the openai client exactly what llama.cpp gives greedily, with real usage counts", async () => {
    const messages = [{ role: "user" as const, content: "Tell me about the sea." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 48 });
    const client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode" });
    const stream = await client.chat.completions.create({
      model: cluster.model!,
      messages,
      max_tokens: 48,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content;
      if (delta) {
        text += delta;
        chunks++;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(1);
    expect(text).toBe(reference.text);
    expect(usage).toEqual({ prompt_tokens: reference.promptTokens, completion_tokens: reference.completionTokens, total_tokens: reference.promptTokens + reference.completionTokens });
  }, 120_000);

  it("serves the model from both nodes and answers non-streaming calls the same way", async () => {
    const models = (await (await fetch(`${cluster.url}/api/v1/models`)).json()) as { models: { id: string; nodes: number }[] };
    expect(models.models).toEqual([expect.objectContaining({ id: cluster.model, nodes: 2 })]);
    const client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode" });
    const messages = [{ role: "user" as const, content: "Hi" }];
    const [a, b, reference] = await Promise.all([
      client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 0 }),
      client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 16, temperature: 0 }),
      greedyReference({ modelPath, messages, maxTokens: 16 }),
    ]);
    expect(a.choices[0]!.message.content).toBe(reference.text);
    expect(b.choices[0]!.message.content).toBe(reference.text);
    expect(a.usage?.completion_tokens).toBe(reference.completionTokens);
  }, 120_000);

  it("marks a daemon killed with SIGKILL offline at once", async () => {
    const victim = cluster.nodes[1]!;
    victim.process.kill("SIGKILL");
    await victim.process.exited;
    const deadline = Date.now() + 5_000;
    let status = "online";
    while (status === "online" && Date.now() < deadline) {
      status = ((await (await fetch(`${cluster.url}/api/v1/nodes/${victim.id}/status`)).json()) as { status: string }).status;
      if (status === "online") await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe("offline");
  }, 30_000);
});
