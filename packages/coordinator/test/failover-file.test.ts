import { afterEach, describe, expect, it } from "vitest";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * Failover by model file, on a real coordinator with scripted nodes (scheduler/design.md "Continuations"): the node
 * that began an answer is lost, and the continuation goes to a node holding the same file rather than one holding
 * another file under the same model name; with only another file left, the job still finishes.
 */
const FILE = "a".repeat(64);
const OTHER = "b".repeat(64);

let t: TestCoordinator | undefined;
const nodes: ScriptedNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.close();
  await t?.close();
  t = undefined;
});

async function start(): Promise<string> {
  t = await testCoordinator({ canaryIntervalS: 0 });
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
}

async function join(baseUrl: string, node: ReturnType<typeof newNode>, sha256: string): Promise<ScriptedNode> {
  const reg = registration(node.id);
  const res = await signedInject(t!, node.signer, "POST", "/api/v1/nodes/register", { ...reg, models: reg.models.map((m) => ({ ...m, sha256 })) });
  expect(res.statusCode).toBe(200);
  const scripted = new ScriptedNode(baseUrl, node.signer, () => Math.floor(t!.clock.now() / 1000));
  await scripted.connect();
  nodes.push(scripted);
  return scripted;
}

/** Ends the continuation it is given. */
function finishes(node: ScriptedNode): void {
  node.onAssign = (job, n) => {
    n.accept(job.job_id);
    n.stream(job.job_id, [{ type: "text-delta", text: " world", tokens: [2] }, { type: "usage", prompt_tokens: 7, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
  };
}

/**
 * The first node (holding FILE) is the only one when the job arrives, writes "Hello" and waits; then the nodes in
 * `later` join, the first drops its session, and the job is continued. Returns the client's whole stream.
 */
async function loseFirstWith(later: Array<[ReturnType<typeof newNode>, string]>): Promise<{ body: string; later: ScriptedNode[] }> {
  const baseUrl = await start();
  const first = await join(baseUrl, newNode(), FILE);
  first.onAssign = (job, n) => {
    n.accept(job.job_id);
    n.stream(job.job_id, [{ type: "text-delta", text: "Hello", tokens: [1] }]);
  };
  const res = await fetch(`${baseUrl}/api/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${t!.token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0, stream: true }),
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let body = "";
  // The client has the first node's text before anyone else joins: the job is a continuation from then on.
  while (!body.includes("Hello")) {
    const { value, done } = await reader.read();
    if (done) break;
    body += decoder.decode(value, { stream: true });
  }
  expect(first.assignments).toHaveLength(1);
  const joined: ScriptedNode[] = [];
  for (const [node, sha256] of later) {
    const scripted = await join(baseUrl, node, sha256);
    finishes(scripted);
    joined.push(scripted);
  }
  await first.close();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    body += decoder.decode(value, { stream: true });
  }
  return { body, later: joined };
}

/** Two new nodes ordered by id, so that the one holding another file would win a tie on cost. */
function orderedPair(): [ReturnType<typeof newNode>, ReturnType<typeof newNode>] {
  const [a, b] = [newNode(), newNode()].sort((x, y) => (x.id < y.id ? -1 : 1));
  return [a!, b!];
}

describe("failover keeps to the model file", () => {
  it("continues on the node holding the lost node's file, not on one holding another file", async () => {
    const [forOther, forSame] = orderedPair();
    const { body, later } = await loseFirstWith([[forOther, OTHER], [forSame, FILE]]);
    const [other, same] = later;
    expect(body).toContain(" world");
    expect(other!.assignments).toHaveLength(0);
    expect(same!.assignments).toHaveLength(1);
    expect(same!.assignments[0]).toMatchObject({ assistant_prefix: "Hello", assistant_prefix_tokens: [1] });
  });

  it("with only another file left, the continuation still runs there: the job is never stranded", async () => {
    const { body, later } = await loseFirstWith([[newNode(), OTHER]]);
    expect(body).toContain(" world");
    expect(later[0]!.assignments).toHaveLength(1);
    expect(body).not.toContain('"failed"');
  });
});
