import { afterEach, describe, expect, it } from "vitest";
import { type NodeRegister, type StreamPart, signResultCommitment } from "@tessera/protocol";
import { newNode, registration, signedInject, testCoordinator, type TestCoordinator } from "./harness.js";
import { ScriptedNode } from "./scripted-node.js";

/**
 * A node's signed result commitment (protocol result-commitment.ts) is recomputed by the coordinator from what it
 * relayed: kept with the segment when it holds, refused (and counted) when it does not.
 */
let t: TestCoordinator | undefined;
let scripted: ScriptedNode | undefined;
afterEach(async () => {
  await scripted?.close();
  await t?.close();
  t = scripted = undefined;
});

const MODEL_SHA = "ab".repeat(32);

async function oneNode() {
  t = await testCoordinator();
  await t.coordinator.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(t.coordinator.app.server.address() as { port: number }).port}`;
  const node = newNode();
  const reg: NodeRegister = { ...registration(node.id), models: [{ id: "tiny", backend: "embedded", sha256: MODEL_SHA }] };
  expect((await signedInject(t, node.signer, "POST", "/api/v1/nodes/register", reg)).statusCode).toBe(200);
  scripted = new ScriptedNode(baseUrl, node.signer, () => Math.floor(t!.clock.now() / 1000));
  await scripted.connect();
  return { baseUrl, node };
}

const CALL = { id: "call_1", type: "function" as const, function: { name: "f", arguments: "{}" } };

/** Streams ids 7, 8, 9 (as text, or as one tool-calls part) and a result part made by `sign` (or none), then finishes. */
function answer(sign: ((job: { job_id: string; sampling: { temperature: number; top_p: number; max_tokens: number; seed?: number } }) => StreamPart) | undefined, as: "text" | "call" = "text") {
  scripted!.onAssign = (job, n) => {
    n.accept(job.job_id);
    n.stream(job.job_id, [
      ...(as === "call"
        ? [{ type: "tool-calls" as const, calls: [CALL], tokens: [7, 8, 9] }]
        : [
          { type: "text-delta" as const, text: "a", tokens: [7] },
          { type: "text-delta" as const, text: "b", tokens: [8] },
          { type: "text-delta" as const, text: "c", tokens: [9] },
        ]),
      { type: "usage", prompt_tokens: 4, completion_tokens: 3 },
      ...(sign ? [sign(job)] : []),
      { type: "finish", reason: "stop" },
    ]);
  };
}

async function runJob(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${t!.token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 8, temperature: 0, stream: true }),
  });
  await res.text();
  return res.headers.get("x-tessera-job-id")!;
}

async function segmentsOf(jobId: string) {
  for (let i = 0; i < 200; i++) {
    const segments = await t!.coordinator.ctx.store.listJobSegments(jobId);
    if (segments.length > 0) return segments;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no segment stored");
}

describe("result commitments", () => {
  it("keeps a valid one with the segment; refuses a forged, mismatched or missing one; the seed is the coordinator's", async () => {
    const { baseUrl, node } = await oneNode();
    const signed = (tokens: number[], sha: string | null = MODEL_SHA) => (job: { job_id: string; sampling: { temperature: number; top_p: number; max_tokens: number; seed?: number } }): StreamPart => {
      const input = {
        jobId: job.job_id,
        modelSha256: sha,
        sampling: { temperature: job.sampling.temperature, top_p: job.sampling.top_p, max_tokens: job.sampling.max_tokens, seed: job.sampling.seed ?? 0 },
        finishReason: "stop" as const,
        outputTokens: tokens,
        logprobs: [],
      };
      return { type: "result", finish_reason: "stop", model_sha256: sha, signature: signResultCommitment(node.signer, input) };
    };

    answer(signed([7, 8, 9]));
    const good = await runJob(baseUrl);
    expect(scripted!.assignments[0]!.sampling.seed).toEqual(expect.any(Number));
    const [segment] = await segmentsOf(good);
    expect(segment).toMatchObject({ resultCommitment: expect.stringMatching(/^[0-9a-f]{64}$/), resultSignature: expect.stringMatching(/^[0-9a-f]{128}$/) });

    for (const sign of [signed([7, 8]), signed([7, 8, 9], "cd".repeat(32)), undefined]) {
      answer(sign);
      const [refused] = await segmentsOf(await runJob(baseUrl));
      expect(refused).toMatchObject({ resultCommitment: null, resultSignature: null });
    }
    const metrics = await t!.coordinator.ctx.metrics.registry.metrics();
    expect(metrics).toMatch(/tessera_result_commitments_total\{outcome="valid"\} 1/);
    expect(metrics).toMatch(/tessera_result_commitments_total\{outcome="invalid"\} 2/);
    expect(metrics).toMatch(/tessera_result_commitments_total\{outcome="missing"\} 1/);

    // A call answer is committed over the ids its one tool-calls part carried, like text.
    answer(signed([7, 8, 9]), "call");
    const [call] = await segmentsOf(await runJob(baseUrl));
    expect(call).toMatchObject({ resultCommitment: expect.stringMatching(/^[0-9a-f]{64}$/) });
    answer(signed([7, 8]), "call");
    const [short] = await segmentsOf(await runJob(baseUrl));
    expect(short).toMatchObject({ resultCommitment: null, resultSignature: null });
  });
});
