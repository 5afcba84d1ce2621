import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { type Cluster, type ClusterNode, type GreedyReference, greedyReference, makeTinyModel, startCluster, streamGreedyChat, waitUntil } from "@tessera/testkit";

/**
 * Issue 5, must-show 1–3 on real processes: a ~50 M-parameter F16 model split over three daemons (each holding one
 * layer span, none holding the whole model) answers through the normal OpenAI endpoint exactly what node-llama-cpp
 * gives greedily on the same file; SIGKILL of the middle stage mid-stream changes nothing the client sees; a model
 * whose layers no node can hold fails at once with `no_capacity` naming the layers.
 */
const MESSAGES = [{ role: "user" as const, content: "Tell me a long story about the sea." }];
const MAX_TOKENS = 72;
const LAYERS = 8;

let dir: string;
let cluster: Cluster;
let modelPath: string;
let reference: GreedyReference;
let stageOnly: ClusterNode;

/** The last span each daemon logged as loaded. */
function spans(nodes: ClusterNode[]): Map<ClusterNode, [number, number]> {
  const out = new Map<ClusterNode, [number, number]>();
  for (const n of nodes) {
    const all = [...n.process.logText.matchAll(/layers \[(\d+), (\d+)\) of \S+ loaded/g)];
    const last = all[all.length - 1];
    if (last) out.set(n, [Number(last[1]), Number(last[2])]);
  }
  return out;
}

function streamChat(onChunk?: (count: number) => void) {
  return streamGreedyChat(cluster.url, { model: "sharded-50m", messages: MESSAGES, maxTokens: MAX_TOKENS }, onChunk);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-shard-e2e-"));
  modelPath = join(dir, "sharded-50m.gguf");
  const decoy = join(dir, "decoy.gguf");
  await makeTinyModel({ path: modelPath, preset: "50m", seed: 5, vocab: "spm" });
  await makeTinyModel({ path: decoy, seed: 1, vocab: "bytes" });
  reference = await greedyReference({ modelPath, messages: MESSAGES, maxTokens: MAX_TOKENS });
  // Two daemons serve only the small decoy model whole, the third no whole model at all (`tessera start --stage-model
  // FILE`, as docs/sharding.md shows it): the 50 M model exists on the network only as spans.
  cluster = await startCluster({
    nodes: 0,
    nodeArgs: ["--backend", "embedded", "--stage-model", modelPath],
    env: { TESSERA_SHARD_REPLICAS: "1" },
  });
  await cluster.addNode({ modelPath: decoy });
  await cluster.addNode({ modelPath: decoy });
  stageOnly = await cluster.addNode();
  // Placement settles once the third offer is in: three spans that partition the layers.
  await waitUntil(() => {
    const s = [...spans(cluster.nodes).values()].sort((a, b) => a[0] - b[0]);
    return s.length === 3 && s[0]![0] === 0 && s[0]![1] === s[1]![0] && s[1]![1] === s[2]![0] && s[2]![1] === LAYERS;
  }, 120_000);
}, 300_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a model split by layers across three daemons", () => {
  it("streams exactly what llama.cpp gives greedily on the whole file, for at least 64 tokens", async () => {
    expect(reference.completionTokens).toBeGreaterThanOrEqual(64);
    const { text, usage } = await streamChat();
    expect(text).toBe(reference.text);
    expect(usage).toEqual({ prompt_tokens: reference.promptTokens, completion_tokens: reference.completionTokens, total_tokens: reference.promptTokens + reference.completionTokens });
    // No daemon holds the whole model: it ran as a three-stage pipeline, one stage on the daemon with no whole model.
    for (const [start, end] of spans(cluster.nodes).values()) expect(end - start).toBeLessThan(LAYERS);
    expect(spans([stageOnly]).size).toBe(1);
    expect(stageOnly.process.logText).toMatch(/offers layer spans only/);
  }, 120_000);

  it("survives SIGKILL of the middle stage's daemon at token 20: the stream completes unchanged", async () => {
    const middle = [...spans(cluster.nodes)].find(([, [start, end]]) => start > 0 && end < LAYERS)![0];
    let killed = false;
    const { text, usage } = await streamChat((count) => {
      if (count === 20 && !killed) {
        killed = true;
        middle.process.kill("SIGKILL");
      }
    });
    expect(killed).toBe(true);
    expect(text).toBe(reference.text);
    expect(usage?.completion_tokens).toBe(reference.completionTokens);
    expect(cluster.coordinator.logText).toMatch(/stage failover: replaying the span's inputs on a replica/);
  }, 120_000);
});

describe("a sharded model whose layers cannot all be held", () => {
  let small: Cluster;
  afterAll(async () => small?.stop());

  it("fails fast with no_capacity naming the missing layers", async () => {
    const path = join(dir, "deep.gguf");
    await makeTinyModel({ path, seed: 3, vocab: "bytes", blockCount: 6 });
    small = await startCluster({
      nodes: 1,
      nodeArgs: ["--backend", "embedded", "--model", join(dir, "decoy.gguf"), "--stage-model", path, "--stage-memory", "0.15"],
      // Fast means not queued: with an hour's queue limit, a request that waited would run past the test's timeout.
      coordinatorArgs: ["--queue-timeout", "3600"],
    });
    await waitUntil(() => /sharded model available/.test(small.coordinator.logText), 30_000);
    const res = await fetch(`${small.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "deep", messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
    });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("no_capacity");
    expect(body.error.message).toMatch(/layers \d+–5/);
  }, 120_000);
});

describe("a stage daemon whose owner comes back", () => {
  let pair: Cluster;
  afterAll(async () => pair?.stop());

  it("drains its span to the other daemon, the model still answers exactly, and it offers its span again once idle", async () => {
    const probe = join(dir, "stage-owner.json");
    writeFileSync(probe, JSON.stringify({ active: false }));
    pair = await startCluster({ nodes: 0, nodeArgs: ["--backend", "embedded", "--stage-model", modelPath], env: { TESSERA_SHARD_REPLICAS: "1" } });
    const keeper = await pair.addNode({ modelPath: join(dir, "decoy.gguf") });
    const owned = await pair.addNode({ nodeArgs: ["--idle-mode", "when-idle", "--idle-after", "1s", "--idle-probe-file", probe] });
    await waitUntil(() => spans([keeper, owned]).size === 2, 120_000);

    writeFileSync(probe, JSON.stringify({ active: true }));
    await waitUntil(() => /layer span\(s\) released/.test(owned.process.logText), 30_000);
    const client = new OpenAI({ baseURL: `${pair.url}/v1`, apiKey: "open-mode", maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: "sharded-50m", messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0 });
    expect(answer.choices[0]!.message.content).toBe(reference.text);
    // The keeper now holds every layer: the drained daemon's span was placed on it (a span of its own or a new whole).
    const held = new Set<number>();
    for (const m of keeper.process.logText.matchAll(/layers \[(\d+), (\d+)\) of \S+ loaded/g)) for (let l = Number(m[1]); l < Number(m[2]); l++) held.add(l);
    expect(held.size).toBe(LAYERS);

    const offersBefore = (pair.coordinator.logText.match(/sharded model placed/g) ?? []).length;
    unlinkSync(probe);
    await waitUntil(() => /idle: waiting → enrolled/.test(owned.process.logText), 30_000);
    await waitUntil(() => (pair.coordinator.logText.match(/sharded model placed/g) ?? []).length > offersBefore, 30_000);
  }, 300_000);
});
