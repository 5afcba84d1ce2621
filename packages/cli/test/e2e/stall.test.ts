import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, greedyReference, killMidStream, makeTinyModel, startCluster } from "@tessera/testkit";

/**
 * The progress deadline on real processes: coordinator + 2 daemons on the embedded engine. The daemon serving a greedy
 * stream is frozen with SIGSTOP at token 12 of 48: its WebSocket stays open and nothing says it is gone. Nodes are
 * kept online for 10 minutes without a heartbeat here, so only the stall deadline (1 s) can move the job; the openai
 * client's stream completes without an error and its text equals the uninterrupted run.
 */
let dir: string;
let cluster: Cluster;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-stall-"));
  modelPath = join(dir, "stall-50m.gguf");
  await makeTinyModel({ path: modelPath, seed: 11, preset: "50m", vocab: "spm" });
  cluster = await startCluster({ nodes: 2, modelPath, coordinatorArgs: ["--stall-timeout", "1", "--first-token-timeout", "5", "--offline-after", "600"] });
}, 240_000);

afterAll(async () => {
  for (const n of cluster?.nodes ?? []) n.process.kill("SIGCONT");
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a node that goes silent mid-stream", () => {
  it("has its job continued elsewhere at the stall deadline, with nothing lost or repeated", async () => {
    const messages = [{ role: "user" as const, content: "Tell me about mountains." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 48 });
    const run = await killMidStream(cluster, { model: cluster.model!, messages, maxTokens: 48 }, 12, "SIGSTOP");
    expect(run.finishedBy).toBeDefined();
    expect(run.finishedBy).not.toBe(run.killed.id);
    expect(run.text).toBe(reference.text);
    expect(run.usage?.completion_tokens).toBe(48);
    const metrics = await (await fetch(`${cluster.url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_job_stalls_total\{phase="between_tokens"\} 1/);
    // The frozen node is still online: it was the deadline, not its session or heartbeats, that moved the job.
    const status = (await (await fetch(`${cluster.url}/api/v1/nodes/${run.killed.id}/status`)).json()) as { status: string };
    expect(status.status).toBe("online");
  }, 120_000);
});
