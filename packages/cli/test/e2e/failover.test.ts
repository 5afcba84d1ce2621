import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, greedyReference, killMidStream, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * Must-show 2 of the routing issue, on real processes: coordinator + 3 daemons on the embedded engine. The daemon
 * serving a greedy stream is SIGKILLed at token 20 of 64; the openai client's stream completes without an error and
 * its text equals the uninterrupted run. The ~56M-parameter model makes decoding slow enough (a few ms a token) that
 * the kill lands mid-generation rather than after it.
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
});
