import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import OpenAI from "openai";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { ManagedProcess, TESSERA_BIN, freePort, greedyReference, makeTinyModel, waitUntil } from "@tessera/testkit";

/**
 * Issue 12 must-show 1, on real processes: three coordinator replicas (r-a, r-b, r-c) on one PostgreSQL database of
 * their own and the machine's NATS server; two node daemons on A and one on C, all on the embedded engine serving one
 * ~56M-parameter file; every client request goes to B, which holds no node at all.
 * - B runs a job on each of the three nodes, and each answers exactly the greedy reference text.
 * - The daemon serving a stream from B is SIGKILLed at token 20: the stream continues on another node (through
 *   whichever replica holds it) and the text equals the uninterrupted run.
 * Under CI=true PostgreSQL and NATS are mandatory; elsewhere the suite is skipped with a notice when either is missing.
 */
const ADMIN_URL = "postgres://127.0.0.1:5432/test";
const NATS_URL = "nats://127.0.0.1:4222";
// Test-only read of the environment: on CI the PostgreSQL and NATS runs are mandatory.
const MANDATORY = process.env.CI === "true";
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_REPLICA_ID: "", TESSERA_DB: "", TESSERA_BUS: "", TESSERA_IDLE_MODE: "always" };
const PGUSER = process.env.PGUSER || userInfo().username;

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL, user: PGUSER, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

const why = (err: unknown) => (err instanceof Error ? err.message || err.name : String(err));
const unreachable =
  (await admin(async (c) => void (await c.query("select 1"))).then(() => undefined, (err: unknown) => `PostgreSQL at ${ADMIN_URL}: ${why(err)}`)) ??
  (await connect({ servers: NATS_URL, timeout: 3_000, maxReconnectAttempts: 0 }).then((nc) => nc.close().then(() => undefined), (err: unknown) => `NATS at ${NATS_URL}: ${why(err)}`));
if (unreachable !== undefined && !MANDATORY) console.warn(`NOTICE: replicas over the bus e2e skipped: ${unreachable} did not answer.`);

const MODEL = "bus-50m";
const database = `tessera_e2e_${randomBytes(6).toString("hex")}`;
const dbUrl = `postgres://127.0.0.1:5432/${database}`;
let dir: string;
let modelPath: string;
const replicas = new Map<string, { url: string; process: ManagedProcess }>();
const daemons = new Map<string, { id: string; replica: string; process: ManagedProcess }>();

async function startReplica(id: string): Promise<void> {
  const port = await freePort();
  const proc = new ManagedProcess(id, process.execPath, [TESSERA_BIN, "coordinator", "start", "--open", "--port", String(port), "--data-dir", join(dir, id), "--db", dbUrl, "--bus", NATS_URL, "--replica-id", id, "--log-format", "json"], {
    env: ENV,
    logFile: join(dir, `${id}.log`),
  });
  await proc.waitFor(/listening on .*replica: /, 60_000);
  replicas.set(id, { url: `http://127.0.0.1:${port}`, process: proc });
}

async function startDaemon(name: string, replica: string): Promise<void> {
  const home = join(dir, name);
  mkdirSync(home, { recursive: true });
  const url = replicas.get(replica)!.url;
  const init = new ManagedProcess(`${name}-init`, process.execPath, [TESSERA_BIN, "init", "--home", home, "--coordinator", url, "--backend", "embedded", "--model", modelPath], { env: ENV });
  const { code } = await init.exited;
  if (code !== 0) throw new Error(`${name}-init failed:\n${init.logText}`);
  const id = init.logText.match(/\b([0-9a-f]{64})\b/)![1]!;
  const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, "start", "--home", home], { env: ENV, logFile: join(dir, `${name}.log`) });
  daemons.set(name, { id, replica, process: proc });
  await waitUntil(async () => (await nodeView(replica, id))?.status === "online", 60_000);
}

async function nodeView(replica: string, id: string): Promise<{ status: string } | undefined> {
  const res = await fetch(`${replicas.get(replica)!.url}/api/v1/nodes/${id}`);
  return res.ok ? ((await res.json()) as { status: string }) : undefined;
}

/** The coordinators' and daemons' recent output, for a failing test's message. */
function logs(): string {
  return [...replicas.values(), ...daemons.values()].map((p) => `--- ${p.process.name} ---\n${p.process.logText.slice(-2500)}`).join("\n");
}

describe.skipIf(unreachable !== undefined && !MANDATORY)("three replicas on one PostgreSQL database and NATS", () => {
  beforeAll(async () => {
    if (unreachable !== undefined) throw new Error(`${unreachable} did not answer (mandatory on CI)`);
    dir = mkdtempSync(join(tmpdir(), "tessera-bus-"));
    modelPath = join(dir, `${MODEL}.gguf`);
    await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm" });
    await admin((c) => c.query(`create database ${database}`));
    // One at a time: each would migrate the new database.
    for (const id of ["r-a", "r-b", "r-c"]) await startReplica(id);
    await startDaemon("a1", "r-a");
    await startDaemon("a2", "r-a");
    await startDaemon("c1", "r-c");
    // B holds no node: it sees all three through the bus.
    await waitUntil(async () => (await Promise.all([...daemons.values()].map((d) => nodeView("r-b", d.id)))).every((v) => v?.status === "online"), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });
  }, 300_000);

  afterAll(async () => {
    await Promise.all([...daemons.values()].map((d) => d.process.stop(5_000)));
    for (const r of replicas.values()) await r.process.stop(5_000);
    await admin((c) => c.query(`drop database if exists ${database} with (force)`)).catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs a client's job from B on each node, wherever its session is, each answering the reference text", async () => {
    const messages = [{ role: "user" as const, content: "Name three rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 24 });
    const b = replicas.get("r-b")!.url;
    for (const [name, d] of daemons) {
      const created = await fetch(`${b}/api/v1/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages, max_tokens: 24, temperature: 0, node_id: d.id }),
      });
      expect(created.status, `${name}: ${await created.clone().text()}`).toBeLessThan(300);
      const { id } = (await created.json()) as { id: string };
      let view: { status: string; node_id?: string; result?: { content: string; usage: { completion_tokens: number } }; error?: string } = { status: "pending" };
      await waitUntil(async () => {
        view = (await (await fetch(`${b}/api/v1/jobs/${id}`)).json()) as typeof view;
        return view.status === "completed" || view.status === "failed";
      }, 60_000);
      expect(view, `${name} on ${d.replica}`).toMatchObject({ status: "completed", node_id: d.id });
      expect(view.result!.content, name).toBe(reference.text);
      expect(view.result!.usage.completion_tokens, name).toBe(reference.completionTokens);
    }
  }, 120_000);

  it("continues a stream from B exactly when its node is SIGKILLed at token 20, across replicas", async () => {
    const messages = [{ role: "user" as const, content: "Write about rivers." }];
    const reference = await greedyReference({ modelPath, messages, maxTokens: 64 });
    const b = replicas.get("r-b")!.url;
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
        const [name, d] = [...daemons].find(([, d]) => d.id === job.node_id)!;
        killed = name;
        d.process.kill("SIGKILL");
      }
    }
    expect(killed, "the stream ended before token 20").toBeDefined();
    const job = (await (await fetch(`${b}/api/v1/jobs/${jobId}`)).json()) as { node_id: string; status: string };
    expect(job.status).toBe("completed");
    expect(job.node_id).not.toBe(daemons.get(killed!)!.id);
    expect(text).toBe(reference.text);
    expect(usage?.completion_tokens).toBe(64);
  }, 120_000);
});
