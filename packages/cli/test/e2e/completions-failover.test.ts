import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type Cluster, type ClusterNode, greedyReference, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * A raw-prompt job survives losing its node, on real processes: coordinator + 2 daemons on the embedded engine. The
 * daemon serving a greedy `/v1/completions` stream is SIGKILLed at chunk 16 of 48; the other continues from the raw
 * prompt followed by the text already sent, and the client's text equals the uninterrupted greedy continuation. The
 * ~56M-parameter model makes decoding slow enough that the kill lands mid-generation.
 */
let dir: string;
let cluster: Cluster;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-completions-failover-"));
  modelPath = join(dir, "failover-50m.gguf");
  await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm" });
  cluster = await startCluster({ nodes: 2, modelPath });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("raw-prompt failover", () => {
  it("continues a completion on the other node when its node is SIGKILLed mid-stream, nothing lost or repeated", async () => {
    const prompt = "Rivers run to the sea, and the sea";
    const reference = await greedyReference({ modelPath, messages: [{ role: "user", content: prompt }], rawPrompt: true, maxTokens: 48 });
    expect(reference.completionTokens).toBe(48);
    const client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
    const stream = await client.completions.create({ model: cluster.model!, prompt, max_tokens: 48, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let chunks = 0;
    let jobId: string | undefined;
    let killed: ClusterNode | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      jobId ??= chunk.id.replace(/^cmpl-/, "");
      if (chunk.usage) usage = chunk.usage;
      const piece = chunk.choices[0]?.text;
      if (!piece) continue;
      text += piece;
      if (++chunks === 16 && !killed) {
        const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
        killed = cluster.nodes.find((n) => n.id === job.node_id);
        if (!killed) throw new Error(`job ${jobId} reports node ${job.node_id}, not one of the cluster's`);
        killed.process.kill("SIGKILL");
      }
    }
    expect(killed).toBeDefined();
    const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
    expect(job.node_id).toBeDefined();
    expect(job.node_id).not.toBe(killed!.id);
    expect(text).toBe(reference.text);
    expect(usage?.completion_tokens).toBe(48);
    expect(usage?.prompt_tokens).toBe(reference.promptTokens);
  }, 180_000);
});
