import { afterEach, describe, expect, it } from "vitest";
import { type CheckScore, type ModelFeature, type NodeRegister, type ScoredPosition, type StreamPart, signDelegation } from "@tessera/protocol";
import OpenAI from "openai";
import type { CoordinatorConfig } from "../src/config.js";
import type { Store } from "../src/store/types.js";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * Spot checks on a real coordinator with scripted nodes: the answering node streams token ids, a reference of another
 * operator scores them, and the verdict moves the answering node's standing. The engines' side is tested in
 * @tessera/node (verification) and end to end in the CLI's trust test.
 */
let t: TestCoordinator | undefined;
const nodes: ScriptedNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.close();
  await t?.close();
  t = undefined;
});

const EOS = 2;
const ANSWER = [11, 12, 13];

type Member = { node: ReturnType<typeof newNode>; scoring: boolean; operator?: ReturnType<typeof newNode>; features?: ModelFeature[]; backend?: string };

async function network(config: Partial<CoordinatorConfig>, members: Member[], wrapStore?: (store: Store) => Store) {
  t = await testCoordinator({ canaryIntervalS: 0, ...config }, { wrapStore });
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
  const out: ScriptedNode[] = [];
  for (const { node, scoring, operator, features, backend } of members) {
    const reg: NodeRegister = {
      ...registration(node.id),
      models: [{ id: "tiny", backend: backend ?? "embedded", ...(scoring ? { scoring: true } : {}), ...(features ? { features } : {}) }],
      ...(operator ? { delegation: signDelegation(operator.signer, node.id, { nowSeconds: Math.floor(t.clock.now() / 1000) }) } : {}),
    };
    const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", reg);
    expect(res.statusCode).toBe(200);
    const scripted = new ScriptedNode(baseUrl, node.signer, () => Math.floor(t!.clock.now() / 1000));
    await scripted.connect();
    out.push(scripted);
    nodes.push(scripted);
  }
  return { baseUrl, nodes: out };
}

/** The answering node: three tokens with their ids, usage, and a stop. */
function answersWithIds(node: ScriptedNode, usage = { prompt_tokens: 5, completion_tokens: 3 }): void {
  node.onAssign = (job, n) => {
    n.accept(job.job_id);
    n.stream(job.job_id, [
      { type: "text-delta", text: "a", tokens: [ANSWER[0]!] },
      { type: "text-delta", text: "b", tokens: [ANSWER[1]!] },
      { type: "text-delta", text: "c", tokens: [ANSWER[2]!] },
      { type: "usage", ...usage },
      { type: "finish", reason: "stop" },
    ]);
  };
}

/** A reference whose model agrees with every token (rank 1) and finds EOS likely after them. */
function agrees(check: CheckScore, node: ScriptedNode, ranks: number[] = check.output_tokens.map(() => 1), topMass = 0.999): void {
  const positions: ScoredPosition[] = check.output_tokens.map((token, i) => ({ token, logprob: ranks[i] === 1 ? -0.1 : -9, rank: ranks[i]!, top_mass: topMass }));
  node.send({ type: "check.scores", check_id: check.check_id, prompt_tokens: 5, positions, eos: { logprob: -0.2, rank: 1 } });
}

async function runJob(baseUrl: string, token: string, nodeId: string, temperature = 0): Promise<void> {
  const res = await fetch(`${baseUrl}/api/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature, node_id: nodeId, stream: true }),
  });
  await res.text();
}

const until = async (what: string, condition: () => boolean | Promise<boolean>) => {
  // Polls for up to 30 s: on a loaded CI machine the scripted round trips take far longer than here.
  for (let i = 0; i < 3000; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("spot checks", () => {
  it("a named reference scores the answer; an honest answer passes, its node's standing records it", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    answersWithIds(net.nodes[0]!);
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("check recorded", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    const [check] = net.nodes[1]!.checks;
    expect(check).toMatchObject({ model: "tiny", output_tokens: ANSWER, messages: [{ role: "user", content: "hi" }] });
    // The node that answered is never told.
    expect(net.nodes[0]!.checks).toEqual([]);
    const view = await t!.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${worker.id}` });
    expect(view.json()).toMatchObject({ checks: { passed: 1, failed: 0 } });
  });

  it("the reference gets the prompt ids the node claims it ran; a reference that renders other ids fails the check (prompt_mismatch)", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    net.nodes[0]!.onAssign = (job, n) => {
      n.accept(job.job_id);
      n.stream(job.job_id, [
        { type: "prompt", tokens: [1, 30, 31, 32] },
        { type: "text-delta", text: "abc", tokens: ANSWER },
        { type: "usage", prompt_tokens: 4, completion_tokens: 3 },
        { type: "finish", reason: "stop" },
      ]);
    };
    net.nodes[1]!.onCheck = (check, n) => n.send({ type: "check.error", check_id: check.check_id, message: "prompt_mismatch: 4 ids, 6 rendered", reason: "prompt_mismatch" });
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("check recorded", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksFailed === 1);
    expect(net.nodes[1]!.checks[0]).toMatchObject({ prompt_tokens: [1, 30, 31, 32], output_tokens: ANSWER });
  });

  /**
   * Three scoring nodes, each its own operator and a named reference. Whichever gets the unpinned job first streams
   * `firstParts` and drops its session; the next continues with the last token. Returns the first node's id.
   */
  async function failOverAfter(firstParts: StreamPart[], onCheck: ScriptedNode["onCheck"]): Promise<{ firstId: string; checks: () => CheckScore[] }> {
    const members = [newNode(), newNode(), newNode()];
    const net = await network({ checkRate: 1, referenceNodes: members.map((m) => m.id) }, members.map((node) => ({ node, scoring: true })));
    let first: ScriptedNode | undefined;
    for (const n of net.nodes) {
      n.onAssign = (job, self) => {
        self.accept(job.job_id);
        if (!first) {
          first = self;
          self.stream(job.job_id, firstParts);
          setTimeout(() => void self.close(), 30);
          return;
        }
        self.stream(job.job_id, [{ type: "text-delta", text: "c", tokens: [ANSWER[2]!] }, { type: "usage", prompt_tokens: 7, completion_tokens: 1 }, { type: "finish", reason: "stop" }]);
      };
      n.onCheck = onCheck;
    }
    const res = await fetch(`${net.baseUrl}/api/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${t!.token}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0, stream: true }),
    });
    expect(await res.text()).toContain('"text":"c"');
    return { firstId: members[net.nodes.indexOf(first!)]!.id, checks: () => net.nodes.flatMap((n) => n.checks) };
  }

  it("the part a first node delivered before it left is checked, cut at its length: false prompt ids fail it; the continued answer is not checked", async () => {
    const { firstId, checks } = await failOverAfter(
      [{ type: "prompt", tokens: [1, 30, 31] }, { type: "text-delta", text: "a", tokens: [ANSWER[0]!] }, { type: "text-delta", text: "b", tokens: [ANSWER[1]!] }],
      (check, self) => self.send({ type: "check.error", check_id: check.check_id, message: "prompt_mismatch: 3 ids, 5 rendered", reason: "prompt_mismatch" }),
    );
    await until("check recorded", () => t!.coordinator.ctx.standing.view(firstId, t!.clock.now()).checksFailed === 1);
    expect(checks()).toHaveLength(1);
    expect(checks()[0]).toMatchObject({ prompt_tokens: [1, 30, 31], output_tokens: [ANSWER[0], ANSWER[1]] });
  });

  it("an honest first node's delivered part passes its check as an answer cut at its length", async () => {
    // The reference finds EOS unlikely after the part: a cut answer is never judged on where it ended.
    const { firstId, checks } = await failOverAfter([{ type: "text-delta", text: "ab", tokens: [ANSWER[0]!, ANSWER[1]!] }], (check, self) =>
      self.send({ type: "check.scores", check_id: check.check_id, prompt_tokens: 5, positions: check.output_tokens.map((token) => ({ token, logprob: -0.1, rank: 1 })), eos: { logprob: -12, rank: 900 } }),
    );
    await until("check recorded", () => t!.coordinator.ctx.standing.view(firstId, t!.clock.now()).checksPassed === 1);
    expect(checks()).toHaveLength(1);
  });

  it("a llama-server node's answer is checked by an embedded reference (one canonical prompt), an Ollama node's is not", async () => {
    const worker = newNode();
    const ollama = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [
      { node: worker, scoring: false, backend: "llama-server" },
      { node: ollama, scoring: false, backend: "ollama" },
      { node: reference, scoring: true },
    ]);
    answersWithIds(net.nodes[0]!);
    answersWithIds(net.nodes[1]!);
    net.nodes[2]!.onCheck = (check, n) => agrees(check, n);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("check recorded", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    expect(t!.coordinator.ctx.checks.hasReferenceFor(ollama.id, "tiny")).toBe(false);
  });

  it("a greedy answer's log-probabilities are checked against the reference's: equal ones pass, made-up ones fail `logprob`", async () => {
    const worker = newNode();
    const reference = newNode();
    // Only the worker offers logprobs, so a request asking for them runs there.
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [
      { node: worker, scoring: false, features: ["chat", "logprobs"] },
      { node: reference, scoring: true },
    ]);
    const answerWith = (logprob: number) => {
      net.nodes[0]!.onAssign = (job, n) => {
        n.accept(job.job_id);
        n.stream(job.job_id, [
          ...ANSWER.map((token, i) => ({ type: "text-delta" as const, text: "abc"[i]!, tokens: [token], logprobs: [logprob], token_logprobs: [{ token: "abc"[i]!, logprob, top_logprobs: [] }] })),
          { type: "usage", prompt_tokens: 5, completion_tokens: 3 },
          { type: "finish", reason: "stop" },
        ]);
      };
    };
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n);
    const client = new OpenAI({ baseURL: `${net.baseUrl}/v1`, apiKey: t!.token, maxRetries: 0 });
    const ask = () => client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0, logprobs: true });
    answerWith(-0.1); // what the reference says
    expect((await ask()).choices[0]!.logprobs!.content!.map((c) => c.logprob)).toEqual([-0.1, -0.1, -0.1]);
    await until("pass recorded", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    answerWith(-2.5); // the node's own model is another one
    await ask();
    // Same tokens, same usage, the reference as content as before: only the log-probabilities can fail it.
    await until("failure recorded", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksFailed === 1);
  });

  it("tokens outside the reference's top 20, or inflated usage, fail the check; two failures quarantine the node", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    answersWithIds(net.nodes[0]!, { prompt_tokens: 5, completion_tokens: 3 });
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n, [1, 500, 1]);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("first failure", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksFailed === 1);
    answersWithIds(net.nodes[0]!, { prompt_tokens: 5000, completion_tokens: 3 });
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("second failure", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksFailed === 2);
    expect(t!.coordinator.ctx.standing.isQuarantined(worker.id)).toBe(true);
    const view = (await t!.coordinator.app.inject({ method: "GET", url: `/api/v1/nodes/${worker.id}` })).json();
    expect(view).toMatchObject({ quarantined: true, checks: { passed: 0, failed: 2 } });
    expect(await metricText()).toMatch(/result="failed"} 2/);
  });

  it("never uses an unnamed untrusted reference, or one that cannot score", async () => {
    const worker = newNode();
    const stranger = newNode();
    const notScoring = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [notScoring.id] }, [
      { node: worker, scoring: false },
      { node: stranger, scoring: true },
      { node: notScoring, scoring: false },
    ]);
    answersWithIds(net.nodes[0]!);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("skip counted", async () => /reason="no_reference"} 1/.test(await metricText()));
    expect(net.nodes.flatMap((n) => n.checks)).toEqual([]);
  });

  it("never uses a reference of the answering node's own operator, even a named one", async () => {
    const operator = newNode();
    const worker = newNode();
    const colleague = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [operator.id] }, [
      { node: worker, scoring: false, operator },
      { node: colleague, scoring: true, operator },
    ]);
    answersWithIds(net.nodes[0]!);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("skip counted", async () => /reason="no_reference"} 1/.test(await metricText()));
    expect(net.nodes[1]!.checks).toEqual([]);
  });

  it("judges a sampled answer by the reference's top-20 mass: tokens a confident reference never ranks fail", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    answersWithIds(net.nodes[0]!);
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n, [4, 2, 9]);
    await runJob(net.baseUrl, t!.token, worker.id, 0.7);
    await until("sampled pass", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n, [300, 500, 900]);
    await runJob(net.baseUrl, t!.token, worker.id, 0.7);
    await until("sampled failure", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksFailed === 1);
    // A reference that cannot say its top-20 mass cannot judge a sampled answer: abandoned.
    net.nodes[1]!.onCheck = (check, n) => n.send({ type: "check.scores", check_id: check.check_id, prompt_tokens: 5, positions: check.output_tokens.map((token) => ({ token, logprob: -1, rank: 1 })), eos: { logprob: -1, rank: 1 } });
    await runJob(net.baseUrl, t!.token, worker.id, 0.7);
    await until("abandoned", async () => /result="abandoned"} 1/.test(await metricText()));
  });

  it("does not check answers sampled hotter than temperature 1, and ignores scores from a node that was not asked", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 1, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    answersWithIds(net.nodes[0]!);
    await runJob(net.baseUrl, t!.token, worker.id, 1.5);
    await until("skip counted", async () => /reason="not_checkable"} 1/.test(await metricText()));
    expect(net.nodes[1]!.checks).toEqual([]);
    // A greedy one is checked; the worker answering the check itself is ignored.
    net.nodes[1]!.onCheck = (check) => agrees(check, net.nodes[0]!, [500, 500, 500]);
    await runJob(net.baseUrl, t!.token, worker.id);
    await until("check sent", () => net.nodes[1]!.checks.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksFailed).toBe(0);
    // A reference that never answers: the check is abandoned when its time is up, nobody judged.
    t!.clock.advance(61_000);
    t!.coordinator.tick();
    expect(await metricText()).toMatch(/result="abandoned"} 1/);
    expect(t!.coordinator.ctx.standing.view(worker.id, t!.clock.now())).toMatchObject({ checksPassed: 0, checksFailed: 0 });
  });
});

const metricText = (): Promise<string> => t!.coordinator.ctx.metrics.registry.metrics();

describe("canaries", () => {
  it("sends each node a greedy job from the pool about once an interval, and has it checked whatever the check rate", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ checkRate: 0, canaryIntervalS: 600, offlineAfterS: 86_400, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    answersWithIds(net.nodes[0]!);
    net.nodes[1]!.onCheck = (check, n) => agrees(check, n);
    t!.coordinator.tick(); // schedules the first canary somewhere in the first interval
    expect(net.nodes[0]!.assignments).toEqual([]);
    t!.clock.advance(601_000);
    t!.coordinator.tick();
    await until("canary answered and checked", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    const [canary] = net.nodes[0]!.assignments;
    expect(canary).toMatchObject({ model: "tiny", sampling: { temperature: 0, max_tokens: 32 } });
    expect(canary!.messages).toEqual([{ role: "user", content: expect.stringMatching(/\S/) }]);
    // The reference is due one too, but nobody can check it (no other reference): it gets none.
    expect(net.nodes[1]!.assignments).toEqual([]);
    // The next one comes 0.5 to 1.5 intervals later, not before.
    t!.clock.advance(299_000);
    t!.coordinator.tick();
    await new Promise((r) => setTimeout(r, 50));
    expect(net.nodes[0]!.assignments).toHaveLength(1);
    t!.clock.advance(602_000);
    t!.coordinator.tick();
    await until("second canary", () => net.nodes[0]!.assignments.length === 2);
  });

  it("checks a canary its node answered before the canary's record was written", async () => {
    const worker = newNode();
    const reference = newNode();
    // The canary's record lands only once its node has answered: the answer is delivered before `submit` resolves.
    let answered!: () => void;
    const written = new Promise<void>((resolve) => (answered = resolve));
    const slowInsert = (store: Store): Store =>
      new Proxy(store, {
        get: (target, key, receiver) =>
          key === "insertJob"
            ? async (...args: Parameters<Store["insertJob"]>) => {
                await written;
                return target.insertJob(...args);
              }
            : Reflect.get(target, key, receiver),
      });
    const net = await network({ checkRate: 0, canaryIntervalS: 600, offlineAfterS: 86_400, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }], slowInsert);
    answersWithIds(net.nodes[0]!);
    let checked = 0;
    net.nodes[1]!.onCheck = (check, n) => {
      checked++;
      agrees(check, n);
    };
    t!.coordinator.tick();
    t!.clock.advance(601_000);
    t!.coordinator.tick();
    await until("canary answered", async () => (await metricText()).includes('tessera_jobs_finished_total{status="completed",error=""} 1'));
    answered();
    await until("canary checked", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    expect(checked).toBe(1);
  });

  it("sends none with --canary-interval 0", async () => {
    const worker = newNode();
    const reference = newNode();
    const net = await network({ canaryIntervalS: 0, offlineAfterS: 86_400, referenceNodes: [reference.id] }, [{ node: worker, scoring: false }, { node: reference, scoring: true }]);
    for (let i = 0; i < 3; i++) {
      t!.coordinator.tick();
      t!.clock.advance(3_600_000);
    }
    expect(t!.coordinator.ctx.registry.get(worker.id)?.online).toBe(true);
    t!.coordinator.tick();
    await new Promise((r) => setTimeout(r, 50));
    expect(net.nodes[0]!.assignments).toEqual([]);
  });
});
