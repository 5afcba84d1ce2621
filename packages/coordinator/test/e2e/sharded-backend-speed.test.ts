import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, type ClusterNode, makeTinyModel, startCluster, streamGreedyChat, waitUntil } from "@tessera/testkit";

/**
 * Issue 16, placement by the backend's measured speed, on real processes: two stage-only daemons offer the same
 * ~50 M-parameter F16 model, one running spans on ggml's CPU backend and one on the WebAssembly runtime. Each offer
 * carries the per-layer time its daemon measured on its own backend at start, so the very first placement (before
 * any span has loaded) sizes the spans by it: the faster daemon takes more layers, and no layer moved from one to
 * the other would lower the slower stage's time. The mixed pipeline then answers.
 */
const LAYERS = 8;
let dir: string;
let cluster: Cluster;
let ggml: ClusterNode;
let wasm: ClusterNode;

/** The span a daemon logged as loaded, and the per-layer time its offer said. */
function observed(node: ClusterNode): { layers: number; msPerLayer: number } {
  const loaded = [...node.process.logText.matchAll(/layers \[(\d+), (\d+)\) of \S+ loaded/g)].at(-1);
  const offered = /stage host: offering .* on \S+: [\d.]+ MiB\/layer with a full-context cache, ([\d.]+) ms\/layer/.exec(node.process.logText);
  if (!loaded || !offered) throw new Error(`no span or no offer in the log of ${node.name}`);
  return { layers: Number(loaded[2]) - Number(loaded[1]), msPerLayer: Number(offered[1]) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-shard-speed-"));
  const modelPath = join(dir, "speed-50m.gguf");
  await makeTinyModel({ path: modelPath, preset: "50m", seed: 5, vocab: "spm" });
  cluster = await startCluster({ nodes: 0, nodeArgs: ["--backend", "embedded", "--stage-model", modelPath], env: { TESSERA_SHARD_REPLICAS: "1" } });
  ggml = await cluster.addNode({ nodeArgs: ["--stage-backend", "ggml-cpu"] });
  wasm = await cluster.addNode({ nodeArgs: ["--stage-backend", "wasm"] });
  await waitUntil(() => {
    try {
      return observed(ggml).layers + observed(wasm).layers === LAYERS;
    } catch {
      return false;
    }
  }, 120_000);
}, 300_000);

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("spans sized by each daemon's measured speed on its own backend", () => {
  it("gives the faster backend's daemon more layers, as many as evens out the two stages' times", async () => {
    const g = observed(ggml);
    const w = observed(wasm);
    console.log(`ggml-cpu: ${g.layers} layers at ${g.msPerLayer} ms/layer; wasm: ${w.layers} layers at ${w.msPerLayer} ms/layer`);
    const [fast, slow] = g.msPerLayer <= w.msPerLayer ? [g, w] : [w, g];
    expect(fast.layers).toBeGreaterThanOrEqual(slow.layers);
    // Minimax: moving one layer either way would not lower the slower stage's time (the logged times are rounded).
    const slack = 1e-3 * LAYERS;
    expect(fast.layers * fast.msPerLayer).toBeLessThanOrEqual((slow.layers + 1) * slow.msPerLayer + slack);
    expect(slow.layers * slow.msPerLayer).toBeLessThanOrEqual((fast.layers + 1) * fast.msPerLayer + slack);
    // The coordinator says what it sized each span by.
    expect(cluster.coordinator.logText).toMatch(/"spans":"\w+\[0,\d\) \([\d.]+ ms\/layer, [\d.]+ MiB\/layer\) \w+\[\d,8\) \([\d.]+ ms\/layer, [\d.]+ MiB\/layer\)","msg":"sharded model placed"/);
  });

  it("answers through the mixed ggml-cpu / WebAssembly pipeline", async () => {
    const { text, usage } = await streamGreedyChat(cluster.url, { model: "speed-50m", messages: [{ role: "user", content: "Say something." }], maxTokens: 16 });
    expect(text.length).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBe(16);
  }, 120_000);
});
