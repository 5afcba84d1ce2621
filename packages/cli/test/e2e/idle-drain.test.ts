import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { EXACT_REPLAY_MAX_TOKENS } from "@tessera/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, type ClusterNode, TESSERA_BIN, continuationPrefixTokens, greedyReference, makeTinyModel, startCluster, waitUntil } from "@tessera/testkit";

/**
 * Must-show 2 of issue 14 §1, on real processes: a coordinator and two daemons on the embedded engine, each with the
 * idle policy reading a probe file (`--idle-probe-file`, the documented test hook). Mid-stream the serving daemon's
 * probe says its owner is active: it drains, hands the job back (the coordinator continues it on the other daemon),
 * frees the model (its resident memory drops, measured), shows `away` in `tessera status --node`, takes no new work,
 * and re-enlists once the owner has been gone for `--idle-after`.
 */
let dir: string;
let cluster: Cluster;
let modelPath: string;
const probes = new Map<string, string>();

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
};
const idleState = (node: ClusterNode): { state: string; reason: string } => {
  try {
    return JSON.parse(readFileSync(join(node.home, "data", "idle-state.json"), "utf8")) as { state: string; reason: string };
  } catch {
    return { state: "none", reason: "" };
  }
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-idle-"));
  modelPath = join(dir, "idle-50m.gguf");
  await makeTinyModel({ path: modelPath, seed: 11, preset: "50m", vocab: "spm" });
  // Short grace and poll so the drain lands early in the stream, within the prefix a continuation replays exactly
  // (EXACT_REPLAY_MAX_TOKENS; embedded/design.md "Long prefixes"), even on a loaded box; enlist_after 3 s to see the
  // re-enlist.
  cluster = await startCluster({ nodes: 0, modelPath, env: { TESSERA_IDLE_DRAIN_GRACE: "100ms", TESSERA_IDLE_POLL_INTERVAL: "50ms" } });
  for (let i = 1; i <= 2; i++) {
    const probe = join(dir, `probe-${i}.json`);
    const node = await cluster.addNode({ nodeArgs: ["--idle-mode", "when-idle", "--idle-after", "3s", "--idle-probe-file", probe] });
    probes.set(node.id, probe);
  }
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("idle policy end to end", () => {
  it("drains the serving daemon when its owner is back: the stream completes with the greedy text, the model leaves memory, the node re-enlists", async () => {
    const messages = [{ role: "user" as const, content: "Tell me about mountains and rivers." }];
    const maxTokens = 200;
    const reference = await greedyReference({ modelPath, messages, maxTokens });
    // Both daemons have served once, so both hold the model (the engine loads lazily).
    const client = new OpenAI({ baseURL: `${cluster.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
    await Promise.all([0, 1].map(() => client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 4, temperature: 0 })));

    const stream = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let chunks = 0;
    let jobId: string | undefined;
    let drainedNode: ClusterNode | undefined;
    let rssBefore = NaN;
    let signalledAt = 0;
    let textAtSignal = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      jobId ??= chunk.id.replace(/^chatcmpl-/, "");
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices[0]?.delta.content;
      if (!delta) continue;
      text += delta;
      chunks++;
      if (chunks === 3) {
        const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
        drainedNode = cluster.nodes.find((n) => n.id === job.node_id);
        if (!drainedNode) throw new Error(`job ${jobId} is on ${job.node_id}, not one of the cluster's`);
        rssBefore = rssMb(drainedNode.process.pid);
        signalledAt = performance.now();
        textAtSignal = text;
        writeFileSync(probes.get(drainedNode.id)!, JSON.stringify({ active: true }));
      }
    }
    expect(drainedNode, "the stream ended before chunk 3").toBeDefined();
    const node = drainedNode!;
    const other = cluster.nodes.find((n) => n !== node)!;

    // The client saw one uninterrupted stream, finished by the other daemon: equal to the greedy answer whenever the
    // handback came within the prefix a continuation replays exactly (15-22 tokens here, loaded or not; CI once saw a
    // signal at chunk 10 land after more than 64). Past it the design promises a faithful join, not an exact one.
    const replayed = continuationPrefixTokens(cluster.coordinator.logText, jobId!);
    process.stdout.write(`idle e2e: the other daemon continued after ${replayed} tokens\n`);
    expect(replayed).toBeGreaterThan(0);
    if (replayed <= EXACT_REPLAY_MAX_TOKENS) expect(text).toBe(reference.text);
    else expect(text.startsWith(textAtSignal) && reference.text.startsWith(textAtSignal)).toBe(true);
    expect(usage?.completion_tokens).toBe(reference.completionTokens);
    const job = (await (await fetch(`${cluster.url}/api/v1/jobs/${jobId}`)).json()) as { node_id?: string };
    expect(job.node_id).toBe(other.id);
    expect(node.process.logText).toMatch(/job handed back to the coordinator/);

    // Drained and away; the model is out of memory.
    await waitUntil(() => idleState(node).state === "away", 20_000);
    const drainMs = performance.now() - signalledAt;
    const rssAfter = rssMb(node.process.pid);
    process.stdout.write(`idle e2e: drained in ${(drainMs / 1000).toFixed(2)} s; RSS ${rssBefore.toFixed(0)} MB → ${rssAfter.toFixed(0)} MB (${(rssBefore - rssAfter).toFixed(0)} MB freed)\n`);
    expect(rssBefore - rssAfter).toBeGreaterThan(50);
    expect(idleState(node).reason).toMatch(/input 0.0 s ago/);
    const status = execFileSync(process.execPath, [TESSERA_BIN, "status", "--node", "--home", node.home, "--url", cluster.url], { encoding: "utf8" });
    expect(status).toMatch(/idle\s+away since .*input 0.0 s ago/);
    // Which tool answered each signal (here the test hook's file for all three).
    expect(status).toMatch(/signals\s+input: probe_file; GPU use by others: probe_file; battery: probe_file/);

    // Takes no work while away: every new job lands on the other daemon.
    for (let i = 0; i < 3; i++) {
      const answer = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 2, temperature: 0 });
      const where = (await (await fetch(`${cluster.url}/api/v1/jobs/${answer.id.replace(/^chatcmpl-/, "")}`)).json()) as { node_id?: string };
      expect(where.node_id).toBe(other.id);
    }

    // The owner leaves: after 3 s of quiet the daemon reloads the model and enlists again.
    unlinkSync(probes.get(node.id)!);
    const leftAt = performance.now();
    await waitUntil(() => idleState(node).state === "enrolled", 20_000);
    const enlistMs = performance.now() - leftAt;
    expect(enlistMs).toBeGreaterThan(2_500);
    process.stdout.write(`idle e2e: re-enlisted ${(enlistMs / 1000).toFixed(2)} s after the owner left\n`);
    expect(node.process.logText).toMatch(/idle: away → waiting/);
    expect(node.process.logText).toMatch(/idle: waiting → enrolled/);
    // And it serves again: with the other daemon away, the next job lands on it.
    writeFileSync(probes.get(other.id)!, JSON.stringify({ active: true }));
    await waitUntil(() => idleState(other).state === "away", 20_000);
    const answer = await client.chat.completions.create({ model: cluster.model!, messages, max_tokens: 8, temperature: 0 });
    const where = (await (await fetch(`${cluster.url}/api/v1/jobs/${answer.id.replace(/^chatcmpl-/, "")}`)).json()) as { node_id?: string };
    expect(where.node_id).toBe(node.id);
    // The model is back in memory (its pages are mapped in as it generates).
    const rssReloaded = rssMb(node.process.pid);
    process.stdout.write(`idle e2e: serving again; RSS ${rssReloaded.toFixed(0)} MB\n`);
    expect(rssReloaded - rssAfter).toBeGreaterThan(50);
    expect(answer.choices[0]?.message.content).toBe(reference.text.slice(0, answer.choices[0]?.message.content?.length));
  }, 180_000);
});
