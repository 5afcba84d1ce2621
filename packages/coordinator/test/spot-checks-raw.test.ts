import { afterEach, describe, expect, it } from "vitest";
import { type NodeRegister, type ScoredPosition, sha256Hex } from "@tessera/protocol";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * Spot checks of raw-prompt jobs (`/v1/completions`): the reference must score after the raw prompt fed as is, so the
 * check carries `raw_prompt` and goes only to a reference whose model takes raw prompts; a reference that would render
 * the prompt as a chat is never asked.
 */
let t: TestCoordinator | undefined;
const nodes: ScriptedNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.close();
  await t?.close();
  t = undefined;
});

const until = async (what: string, condition: () => boolean) => {
  for (let i = 0; i < 3000; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("spot checks of raw-prompt jobs", () => {
  it("go to a reference that takes raw prompts, with raw_prompt set; a chat-only reference is never asked", async () => {
    const worker = newNode();
    const chatOnly = newNode();
    const raw = newNode();
    t = await testCoordinator({ canaryIntervalS: 0, checkRate: 1, referenceNodes: [chatOnly.id, raw.id] });
    await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
    const baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
    const specs: Array<[ReturnType<typeof newNode>, NodeRegister["models"][number]]> = [
      [worker, { id: "tiny", backend: "embedded", features: ["chat", "raw_prompt"] }],
      [chatOnly, { id: "tiny", backend: "embedded", scoring: true, features: ["chat"] }],
      [raw, { id: "tiny", backend: "embedded", scoring: true, features: ["chat", "raw_prompt"] }],
    ];
    for (const [node, model] of specs) {
      const res = await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", { ...registration(node.id), models: [model] });
      expect(res.statusCode).toBe(200);
      const scripted = new ScriptedNode(baseUrl, node.signer, () => Math.floor(t!.clock.now() / 1000));
      await scripted.connect();
      nodes.push(scripted);
    }
    const [workerNode, chatOnlyNode, rawNode] = nodes as [ScriptedNode, ScriptedNode, ScriptedNode];
    workerNode.onAssign = (job, n) => {
      n.accept(job.job_id);
      n.stream(job.job_id, [
        { type: "text-delta", text: " upon", tokens: [11] },
        { type: "text-delta", text: " a time", tokens: [12, 13] },
        { type: "usage", prompt_tokens: 4, completion_tokens: 3 },
        { type: "finish", reason: "stop" },
      ]);
    };
    rawNode.onCheck = (check, n) => {
      const positions: ScoredPosition[] = check.output_tokens.map((token) => ({ token, logprob: -0.1, rank: 1, top_mass: 0.999 }));
      n.send({ type: "check.scores", check_id: check.check_id, prompt_tokens: 4, positions, eos: { logprob: -0.2, rank: 1 } });
    };
    const job = await t.coordinator.ctx.jobs.submit({
      ownerId: "key-test",
      model: "tiny",
      messages: [{ role: "user", content: "Once" }],
      rawPrompt: true,
      sampling: { max_tokens: 8, temperature: 0, top_p: 1 },
      nodeId: worker.id,
    });
    await until("check passed", () => t!.coordinator.ctx.standing.view(worker.id, t!.clock.now()).checksPassed === 1);
    expect(job.text).toBe(" upon a time");
    expect(workerNode.assignments[0]).toMatchObject({ raw_prompt: true, messages: [{ role: "user", content: "Once" }] });
    expect(rawNode.checks).toHaveLength(1);
    expect(rawNode.checks[0]).toMatchObject({ raw_prompt: true, messages: [{ role: "user", content: "Once" }], output_tokens: [11, 12, 13] });
    expect(chatOnlyNode.checks).toEqual([]);
    // The stored prompt hash says the prompt was raw: not the hash of a one-message chat with the same text.
    const stored = await t.coordinator.ctx.store.getJob(job.id);
    expect(stored?.promptSha256).toBe(sha256Hex(JSON.stringify({ raw_prompt: "Once" })));
    expect(stored?.promptSha256).not.toBe(sha256Hex(JSON.stringify([{ role: "user", content: "Once" }])));
  });
});
