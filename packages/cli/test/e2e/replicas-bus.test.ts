import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { ReplicaNetwork, greedyReference, makeTinyModel, probeNatsServer, probePostgresServer, waitUntil } from "@tessera/testkit";

/**
 * Issue 12 must-show 1, on real processes: three coordinator replicas (r-a, r-b, r-c) on one PostgreSQL database of
 * their own and the machine's NATS server; two node daemons on A and one on C, all on the embedded engine serving one
 * ~56M-parameter file; every client request goes to B, which holds no node at all.
 * - B runs a job on each of the three nodes, and each answers exactly the greedy reference text.
 * - The daemon serving a stream from B is SIGKILLed at token 20: the stream continues on another node (through
 *   whichever replica holds it) and the text equals the uninterrupted run.
 * Under CI=true PostgreSQL and NATS are mandatory; elsewhere the suite is skipped with a notice when either is missing.
 */
// Test-only read of the environment: on CI the PostgreSQL and NATS runs are mandatory.
const MANDATORY = process.env.CI === "true";
const unreachable = (await probePostgresServer()) ?? (await probeNatsServer());
if (unreachable !== undefined && !MANDATORY) console.warn(`NOTICE: replicas over the bus e2e skipped: ${unreachable} did not answer.`);

const MODEL = "bus-50m";
let network: ReplicaNetwork;
let modelPath: string;

async function pinnedJob(replica: string, nodeId: string, messages: Array<{ role: "user"; content: string }>, maxTokens: number) {
  const url = network.replicas.get(replica)!.url;
  const created = await fetch(`${url}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages, max_tokens: maxTokens, temperature: 0, node_id: nodeId }),
  });
  if (!created.ok) throw new Error(`job refused: ${created.status} ${await created.text()}`);
  const { id } = (await created.json()) as { id: string };
  let view: { status: string; node_id?: string; result?: { content: string; usage: { completion_tokens: number } }; error?: string } = { status: "pending" };
  await waitUntil(async () => {
    view = (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as typeof view;
    return view.status === "completed" || view.status === "failed";
  }, 60_000);
  return view;
}

describe.skipIf(unreachable !== undefined && !MANDATORY)("three replicas on one PostgreSQL database and NATS", () => {
  beforeAll(async () => {
    if (unreachable !== undefined) throw new Error(`${unreachable} did not answer (mandatory on CI)`);
    network = await ReplicaNetwork.create({ bus: true });
    modelPath = join(network.dir, `${MODEL}.gguf`);
    await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm" });
    for (const id of ["r-a", "r-b", "r-c"]) await network.startReplica(id);
    const embedded = ["--backend", "embedded", "--model", modelPath];
    await network.startDaemon("a1", ["r-a"], embedded);
    await network.startDaemon("a2", ["r-a"], embedded);
    await network.startDaemon("c1", ["r-c"], embedded);
    // B holds no node: it sees all three through the bus.
    await waitUntil(async () => (await Promise.all([...network.daemons.values()].map((d) => network.nodeStatus("r-b", d.id)))).every((s) => s === "online"), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${network.logs()}`);
    });
  }, 300_000);

  afterAll(async () => {
    await network?.stop();
  });

  it("runs a client's job from B on each node, wherever its session is, each answering the reference text", async () => {
    const messages = [{ role: "user" as const, content: "Name three rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 24 });
    for (const [name, d] of network.daemons) {
      const view = await pinnedJob("r-b", d.id, messages, 24);
      expect(view, name).toMatchObject({ status: "completed", node_id: d.id });
      expect(view.result!.content, name).toBe(reference.text);
      expect(view.result!.usage.completion_tokens, name).toBe(reference.completionTokens);
    }
  }, 120_000);

  it("continues a stream from B exactly when its node is SIGKILLed at token 20, across replicas", async () => {
    const messages = [{ role: "user" as const, content: "Write about rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 64 });
    const b = network.replicas.get("r-b")!.url;
    const client = new OpenAI({ baseURL: `${b}/v1`, apiKey: "open-mode", maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 64, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let chunks = 0;
    let jobId: string | undefined;
    let killed: string | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      jobId ??= chunk.id.replace(/^chatcmpl-/, "");
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices[0]?.delta.content;
      if (!delta) continue;
      text += delta;
      if (++chunks === 20) {
        const job = (await (await fetch(`${b}/api/v1/jobs/${jobId}`)).json()) as { node_id: string };
        const daemon = [...network.daemons.values()].find((d) => d.id === job.node_id)!;
        killed = daemon.id;
        daemon.process.kill("SIGKILL");
      }
    }
    expect(killed, "the stream ended before token 20").toBeDefined();
    const job = (await (await fetch(`${b}/api/v1/jobs/${jobId}`)).json()) as { node_id: string; status: string };
    expect(job.status).toBe("completed");
    expect(job.node_id).not.toBe(killed);
    expect(text).toBe(reference.text);
    expect(usage?.completion_tokens).toBe(64);
  }, 120_000);
});
