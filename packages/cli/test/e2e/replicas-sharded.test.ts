import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, type GreedyReference, ReplicaNetwork, greedyReference, makeTinyModel, probeNatsServer, probePostgresServer, streamGreedyChat, waitUntil } from "@tessera/testkit";

/**
 * Issue 12 must-show 1, its last point, on real processes: a sharded model whose stages sit on different replicas
 * answers the same tokens as on one. Three coordinator replicas (r-a, r-b, r-c) on one PostgreSQL database and the
 * machine's NATS server; two daemons that offer layer spans of one ~50 M F16 file and serve nothing whole, one held by
 * A and one by C. A leads sharded models (the lowest live id): it places one span on each daemon and runs the
 * pipeline, whose stage traffic to C's daemon crosses the bus. The client asks B, which holds no node at all.
 * - The stream equals node-llama-cpp's greedy answer on the whole file, token for token, with the same usage.
 * - C's daemon is SIGKILLed mid-stream: its span is loaded on A's daemon, its saved inputs replayed there, and the
 *   text is unchanged.
 * - The leader, replica A, is SIGKILLed: B leads, places the spans again over both daemons (A's moved to B), and the
 *   stream is the same again.
 * Under CI=true PostgreSQL and NATS are mandatory; elsewhere the suite is skipped with a notice when either is missing.
 */
// Test-only read of the environment: on CI the PostgreSQL and NATS runs are mandatory.
const MANDATORY = process.env.CI === "true";
const unreachable = (await probePostgresServer()) ?? (await probeNatsServer());
if (unreachable !== undefined && !MANDATORY) console.warn(`NOTICE: sharded model across replicas e2e skipped: ${unreachable} did not answer.`);

const MODEL = "sharded-50m";
const LAYERS = 8;
const MESSAGES = [{ role: "user" as const, content: "Tell me a long story about the sea." }];
const MAX_TOKENS = 72;
let network: ReplicaNetwork;
let reference: GreedyReference;

/** The last span a daemon logged as loaded. */
function lastSpan(daemon: DaemonProcess): [number, number] | undefined {
  const all = [...daemon.process.logText.matchAll(/layers \[(\d+), (\d+)\) of \S+ loaded/g)];
  const last = all[all.length - 1];
  return last ? [Number(last[1]), Number(last[2])] : undefined;
}

function streamFromB(onChunk?: (count: number) => void) {
  return streamGreedyChat(network.replicas.get("r-b")!.url, { model: MODEL, messages: MESSAGES, maxTokens: MAX_TOKENS }, onChunk);
}

describe.skipIf(unreachable !== undefined && !MANDATORY)("a sharded model whose stages sit on different replicas", () => {
  beforeAll(async () => {
    if (unreachable !== undefined) throw new Error(`${unreachable} did not answer (mandatory on CI)`);
    // One copy of each span: the two daemons split the layers between them.
    network = await ReplicaNetwork.create({ bus: true, coordinatorArgs: ["--shard-replicas", "1"] });
    const modelPath = join(network.dir, `${MODEL}.gguf`);
    await makeTinyModel({ path: modelPath, preset: "50m", seed: 5, vocab: "spm" });
    reference = await greedyReference({ modelPath, messages: MESSAGES, maxTokens: MAX_TOKENS });
    for (const id of ["r-a", "r-b", "r-c"]) await network.startReplica(id);
    const spansOnly = ["--backend", "embedded", "--stage-model", modelPath];
    await network.startDaemon("s-a", ["r-a", "r-b", "r-c"], spansOnly);
    await network.startDaemon("s-c", ["r-c", "r-b", "r-a"], spansOnly);
    const [sa, sc] = [network.daemons.get("s-a")!, network.daemons.get("s-c")!];
    // Placement settles once both offers are in: two spans that partition the layers, one on each daemon.
    await waitUntil(() => {
      const s = [lastSpan(sa), lastSpan(sc)];
      if (!s[0] || !s[1]) return false;
      const [first, second] = s.sort((x, y) => x![0] - y![0]) as [number, number][];
      return first![0] === 0 && first![1] === second![0] && second![1] === LAYERS;
    }, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${network.logs()}`);
    });
    // B holds no node, yet lists the model: the pipeline A runs, shown through A's beats.
    await waitUntil(async () => {
      const res = await fetch(`${network.replicas.get("r-b")!.url}/v1/models`);
      return ((await res.json()) as { data: Array<{ id: string }> }).data.some((m) => m.id === MODEL);
    }, 30_000);
  }, 300_000);

  afterAll(async () => {
    await network?.stop();
  });

  it("streams from B exactly what llama.cpp gives greedily on the whole file, the stages on A's and C's daemons", async () => {
    expect(reference.completionTokens).toBeGreaterThanOrEqual(64);
    const { text, usage } = await streamFromB();
    expect(text).toBe(reference.text);
    expect(usage).toEqual({ prompt_tokens: reference.promptTokens, completion_tokens: reference.completionTokens, total_tokens: reference.promptTokens + reference.completionTokens });
    for (const name of ["s-a", "s-c"]) {
      const [start, end] = lastSpan(network.daemons.get(name)!)!;
      expect(end - start, name).toBeLessThan(LAYERS);
    }
    // B lists the split the leader's beats tell it.
    const models = (await (await fetch(`${network.replicas.get("r-b")!.url}/api/v1/models`)).json()) as { models: Array<{ id: string; sharded?: object }> };
    expect(models.models.find((m) => m.id === MODEL)?.sharded).toEqual({ stages: 2, layers: LAYERS, nodes: 2, ready: true });
    // A leads sharded models; B and C relay to it.
    expect(network.replicas.get("r-a")!.process.logText).toMatch(/leading sharded models/);
    expect(network.replicas.get("r-b")!.process.logText).not.toMatch(/leading sharded models: placing spans/);
    expect(network.replicas.get("r-c")!.process.logText).not.toMatch(/leading sharded models: placing spans/);
  }, 120_000);

  it("carries a long prompt's activations between the replicas in chunks: frames over the NATS server's 1 MiB, the same tokens as llama.cpp", async () => {
    // About 900 prompt tokens: the first stage's hidden states are 900 x 512 F32 values, 1.8 MB in one frame, which
    // crosses between A and C (the stages' replicas) in chunks of the server's default max_payload.
    const messages = [{ role: "user" as const, content: "The wind rose over the grey sea, and the old boat turned towards the harbour lights. ".repeat(48) }];
    const long = await greedyReference({ modelPath: join(network.dir, `${MODEL}.gguf`), messages, maxTokens: 8 });
    expect(long.promptTokens * 512 * 4).toBeGreaterThan(1024 * 1024);
    const { text, usage } = await streamGreedyChat(network.replicas.get("r-b")!.url, { model: MODEL, messages, maxTokens: 8 });
    expect(text).toBe(long.text);
    expect(usage?.prompt_tokens).toBe(long.promptTokens);
    for (const id of ["r-a", "r-b", "r-c"]) expect(network.replicas.get(id)!.process.logText, id).not.toMatch(/bus message refused|larger than the (replicas' )?bus carries/);
  }, 180_000);

  it("survives SIGKILL of C's stage daemon mid-stream: the span moves to A's daemon and the text is unchanged", async () => {
    const sc = network.daemons.get("s-c")!;
    let killed = false;
    const { text, usage } = await streamFromB((count) => {
      if (count === 20 && !killed) {
        killed = true;
        sc.process.kill("SIGKILL");
      }
    });
    expect(killed).toBe(true);
    expect(text).toBe(reference.text);
    expect(usage?.completion_tokens).toBe(reference.completionTokens);
    expect(network.replicas.get("r-a")!.process.logText).toMatch(/stage failover: replaying the span's inputs on a replica/);
  }, 120_000);

  it("answers the same when the leader dies: B leads, places the spans again on both daemons, and streams exactly", async () => {
    await network.restartDaemon("s-c");
    const bLogBefore = network.replicas.get("r-b")!.process.logText.length;
    network.replicas.get("r-a")!.process.kill("SIGKILL");
    // A's daemon moves to B (the next address it knows); B, now the lowest live id, places the spans again. B still
    // shows A's placement as ready until it notices A is gone, so first wait for B to take the lead.
    const tookLead = () => /leading sharded models: placing spans/.test(network.replicas.get("r-b")!.process.logText.slice(bLogBefore));
    await waitUntil(tookLead, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}: B never took the lead\n${network.logs()}`);
    });
    await waitUntil(async () => {
      const res = await fetch(`${network.replicas.get("r-b")!.url}/api/v1/models`).catch(() => undefined);
      const models = res?.ok ? ((await res.json()) as { models: Array<{ id: string; sharded?: { ready: boolean; stages: number | null } }> }).models : [];
      const m = models.find((x) => x.id === MODEL);
      return m?.sharded?.ready === true && m.sharded.stages === 2;
    }, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${network.logs()}`);
    });
    expect(tookLead()).toBe(true);
    const { text, usage } = await streamFromB();
    expect(text).toBe(reference.text);
    expect(usage?.completion_tokens).toBe(reference.completionTokens);
  }, 180_000);
});
