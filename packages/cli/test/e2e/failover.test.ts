import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type Cluster, type ClusterNode, greedyReference, killMidStream, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * Must-show 2 of the routing issue, on real processes: coordinator + 3 daemons on the embedded engine. The daemon
 * serving a greedy stream is SIGKILLed at token 20 of 64; the openai client's stream completes without an error and
 * its text equals the uninterrupted run. The ~56M-parameter model makes decoding slow enough (a few ms a token) that
 * the kill lands mid-generation rather than after it.
 *
 * Issue 11's "stop sequences are honoured … across a failover" on the same cluster: a greedy chat stream with a stop
 * sequence from late in the answer loses its node (SIGKILL) early on; the node that continues writes the stop, and the
 * client's text still ends just before it, with finish_reason stop. (A stop split exactly across the two nodes' text is
 * pinned with scripted nodes in packages/coordinator/test/stop-sequences.test.ts.)
 */
let dir: string;
let cluster: Cluster;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-failover-"));
  modelPath = join(dir, "failover-50m.gguf");
  await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm" });
  cluster = await startCluster({ nodes: 3, modelPath });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("failover", () => {
  it("continues a stream on another node when its node is SIGKILLed at token 20, with nothing lost or repeated", async () => {
    const messages = [{ role: "user" as const, content: "Write about rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 64 });
    expect(reference.completionTokens).toBe(64);
    const run = await killMidStream(cluster, { model: cluster.model!, messages, maxTokens: 64 }, 20);
    expect(run.finishedBy).toBeDefined();
    expect(run.finishedBy).not.toBe(run.killed.id);
    expect(run.text).toBe(reference.text);
    expect(run.usage?.completion_tokens).toBe(64);
    expect(run.usage?.prompt_tokens).toBe(reference.promptTokens);
    expect(run.resumeMs).toBeGreaterThan(0);
  }, 120_000);

  it("the node that takes over writes the stop; the client's text ends before it and never holds it", async () => {
    const messages = [{ role: "user" as const, content: "Write about rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 64 });
    expect(reference.completionTokens).toBe(64);
    const at = Math.floor(reference.text.length * 0.8);
    const stop = reference.text.slice(at, at + 3);
    const cut = reference.text.indexOf(stop);
    // The stop first shows up well after the kill below (chunk 12 of 64), so the second node is the one that writes it.
    expect(cut).toBeGreaterThan(reference.text.length / 2);
    const expected = reference.text.slice(0, cut);

    const client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 64, temperature: 0, stop: [stop], stream: true });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    let jobId: string | undefined;
    let killed: ClusterNode | undefined;
    for await (const chunk of stream) {
      jobId ??= chunk.id.replace(/^chatcmpl-/, "");
      finish = chunk.choices[0]?.finish_reason ?? finish;
      const piece = chunk.choices[0]?.delta.content;
      if (!piece) continue;
      text += piece;
      if (++chunks === 12 && !killed) {
        const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
        killed = cluster.nodes.find((n) => n.id === job.node_id);
        if (!killed) throw new Error(`job ${jobId} reports node ${job.node_id}, not one of the cluster's`);
        killed.process.kill("SIGKILL");
      }
    }
    expect(killed).toBeDefined();
    const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string; status: string };
    expect(job.status).toBe("completed");
    expect(job.node_id).not.toBe(killed!.id);
    expect(text).toBe(expected);
    expect(text).not.toContain(stop);
    expect(finish).toBe("stop");
  }, 180_000);
});
