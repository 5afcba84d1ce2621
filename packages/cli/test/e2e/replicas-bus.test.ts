import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import { generateKeyPair, secretKeySigner, signRequest } from "@tessera/protocol";
import { ReplicaNetwork, greedyReference, killMidStream, makeTinyModel, probeNatsServer, probePostgresServer, waitUntil } from "@tessera/testkit";

/**
 * Issue 12 must-show 1, on real processes: three coordinator replicas (r-a, r-b, r-c) on one PostgreSQL database of
 * their own and the machine's NATS server; two node daemons on A and one on C, all on the embedded engine serving one
 * ~56M-parameter file; every client request goes to B, which holds no node at all.
 * - B runs a job on each of the three nodes, and each answers exactly the greedy reference text.
 * - The daemon serving a stream from B is SIGKILLed at token 20: the stream continues on another node (through
 *   whichever replica holds it) and the text equals the uninterrupted run.
 * - A signed node request accepted by A is refused when replayed to B and to C.
 * - Chaos: replica A is SIGKILLed while 20 streams run through B. A's nodes move to B or C and serve again; every
 *   stream ends with the reference text; the record shows them online, held by B or C; no job is left pending or
 *   processing, and none completed with an error.
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
    // Each daemon knows every replica (its own first), so it can move when its replica dies.
    await network.startDaemon("a1", ["r-a", "r-b", "r-c"], embedded);
    await network.startDaemon("a2", ["r-a", "r-c", "r-b"], embedded);
    await network.startDaemon("c1", ["r-c", "r-a", "r-b"], embedded);
    // B holds no node: it sees all three through the bus.
    await waitUntil(async () => (await Promise.all([...network.daemons.values()].map((d) => network.nodeStatus("r-b", d.id)))).every((s) => s === "online"), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${network.logs()}`);
    });
    // And says so on /metrics: A holds two, C one.
    const metrics = await (await fetch(`${network.replicas.get("r-b")!.url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_replica_peer_nodes\{replica="r-a"\} 2/);
    expect(metrics).toMatch(/tessera_replica_peer_nodes\{replica="r-c"\} 1/);
    // And the bus's round trip to each of the others, measured from their echoes of its beats (routing adds it to a
    // remote node's round trip): a few beats after the start, a figure for both.
    await waitUntil(async () => {
      const text = await (await fetch(`${network.replicas.get("r-b")!.url}/metrics`)).text();
      return ["r-a", "r-c"].every((r) => new RegExp(`^tessera_replica_peer_rtt_seconds\\{replica="${r}"\\} \\d`, "m").test(text));
    }, 15_000);
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
    // B holds no node, so each of those jobs went out as a command and came back as reports; its metrics count both.
    const metrics = await (await fetch(`${network.replicas.get("r-b")!.url}/metrics`)).text();
    const count = (direction: string, subject: string) => Number(new RegExp(`^tessera_bus_messages_total\\{direction="${direction}",subject="${subject}"\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? 0);
    expect(count("sent", "commands")).toBeGreaterThanOrEqual(network.daemons.size);
    expect(count("received", "reports")).toBeGreaterThanOrEqual(network.daemons.size);
    expect(count("sent", "beats")).toBeGreaterThan(0);
    expect(metrics).toMatch(/^tessera_bus_bytes_total\{direction="sent",subject="commands"\} [1-9]\d*$/m);
  }, 120_000);

  it("refuses a signed node request accepted by A when it is replayed to B or to C (replayed_nonce)", async () => {
    const signer = secretKeySigner(generateKeyPair().secretKeyHex);
    const body = JSON.stringify({ type: "register", public_key: signer.publicKeyHex, version: "0.1.0", hardware: { cpu_cores: 2, ram_mb: 4096, gpus: [] }, models: [{ id: "replay-test", backend: "ollama" }], max_concurrency: 1 });
    const headers = { ...signRequest(signer, { method: "POST", path: "/api/v1/nodes/register", body }), "content-type": "application/json" };
    const send = (replica: string) => fetch(`${network.replicas.get(replica)!.url}/api/v1/nodes/register`, { method: "POST", headers, body });
    expect((await send("r-a")).status).toBe(200);
    for (const replica of ["r-b", "r-c"]) {
      const replayed = await send(replica);
      expect(replayed.status, replica).toBe(401);
      expect(await replayed.json(), replica).toEqual({ error: "unauthorized", error_message: "nonce was already used (replayed request)" });
    }
  }, 30_000);

  it("continues a stream from B exactly when its node is SIGKILLed at token 20, across replicas", async () => {
    const messages = [{ role: "user" as const, content: "Write about rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 64 });
    const run = await killMidStream({ url: network.replicas.get("r-b")!.url, nodes: network.daemons.values() }, { model: MODEL, messages, maxTokens: 64 }, 20);
    expect(run.finishedBy).toBeDefined();
    expect(run.finishedBy).not.toBe(run.killed.id);
    expect(run.text).toBe(reference.text);
    expect(run.usage?.completion_tokens).toBe(64);
  }, 120_000);
  it("loses no stream when replica A is SIGKILLed while 20 streams run through B: A's nodes serve again through B or C", async () => {
    const messages = [{ role: "user" as const, content: "Tell me about stones." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 48 });
    const b = network.replicas.get("r-b")!.url;
    // The SIGKILL test above left one node dead: start it again on its own home (the same key).
    for (const d of network.daemons.values()) if (!d.process.running) await network.restartDaemon(d.name);
    const continued = async () => (await network.query("select job_id from job_segments group by job_id having count(*) > 1")).length;
    const continuedBefore = await continued();
    const client = new OpenAI({ baseURL: `${b}/v1`, apiKey: "open-mode", maxRetries: 0 });
    let received = 0;
    let killed = false;
    const killA = () => {
      killed = true;
      network.replicas.get("r-a")!.process.kill("SIGKILL");
    };
    const streams = Array.from({ length: 20 }, async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 48, temperature: 0, stream: true });
      let text = "";
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        // A is killed once the streams are well under way, some of them on A's nodes.
        if (++received === 60 && !killed) killA();
      }
      return text;
    });
    const texts = await Promise.all(streams);
    expect(killed).toBe(true);
    expect(texts.filter((t) => t !== reference.text)).toEqual([]);
    // Some streams were on A's nodes when A died, and went on elsewhere.
    await waitUntil(async () => (await continued()) > continuedBefore, 10_000);

    // A's nodes serve again, through B or C (B holds no node of its own: a pinned job from it proves the route).
    for (const name of ["a1", "a2"]) {
      const view = await pinnedJob("r-b", network.daemons.get(name)!.id, messages, 4);
      expect(view, name).toMatchObject({ status: "completed" });
    }
    // The record says where they are: online, held by B or C, not by the dead A.
    const ids = ["a1", "a2"].map((name) => network.daemons.get(name)!.id);
    const held = await network.query<{ id: string; status: string; held_by: string }>("select id, status, held_by from nodes where id = any($1) order by id", [ids]);
    expect(held.map((r) => r.status)).toEqual(["online", "online"]);
    expect(held.every((r) => r.held_by === "r-b" || r.held_by === "r-c")).toBe(true);
    // Nothing is left running, and nothing completed with an error, in the shared record.
    expect(await network.query("select id, status from jobs where status in ('pending', 'processing')")).toEqual([]);
    expect(await network.query("select id from jobs where status = 'completed' and error is not null")).toEqual([]);
  }, 180_000);
});
