import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeVllmScoring, waitUntil } from "@tessera/testkit";
import { type ReferenceScoringNetwork, startReferenceScoringNetwork } from "./reference-scoring-network.js";

/**
 * A coordinator's spot checks served by a vLLM-backed reference, on real processes: a coordinator checking every
 * answer (`--check-rate 1`) and three daemons on the vLLM backend, each its own operator, in front of id-level vLLM
 * fakes backed by real models (testkit's FakeVllmScoring):
 *   honest:    a vLLM serving the model;
 *   reference: a vLLM serving the same model, with --reference-scoring on, named with --reference-node;
 *   swap:      a vLLM serving other weights (another seed) under the same name.
 * Greedy jobs pinned to the honest node pass their checks, scored by the reference through prompt_logprobs; jobs
 * pinned to the swap node fail theirs. Nothing about the checks is faked: the tokens, the log-probabilities and the
 * scores are the models' own, through vLLM's wire format.
 */
const MODEL = "vllm-ref-tiny";
let network: ReferenceScoringNetwork<FakeVllmScoring>;

const nodeView = (id: string) => network.processes.nodeView(id);
const job = (content: string, nodeId: string) => network.processes.job({ model: MODEL, content, maxTokens: 12, nodeId });

beforeAll(async () => {
  network = await startReferenceScoringNetwork({
    model: MODEL,
    tmpPrefix: "tessera-vllm-ref-",
    startFake: (model) => FakeVllmScoring.start({ model }),
    backendArgs: (fakeUrl) => ["--backend", "vllm", "--vllm-host", fakeUrl],
    referenceArgs: () => ["--reference-scoring", "on"],
  });
}, 300_000);

afterAll(async () => {
  await network?.stop();
});

describe("spot checks with a vLLM reference", () => {
  it("the honest vLLM node passes its checks, the node serving other weights fails them, scored through prompt_logprobs", async () => {
    const { honestFake, honestId: honest, swapId: swap } = network;
    const scoredBefore = honestFake.requests.filter((r) => r.path === "/v1/completions").length;
    for (let i = 0; i < 2; i++) {
      expect((await job(`Job ${i}: tell me about rivers and stones.`, honest)).status).toBe("completed");
      expect((await job(`Job ${i}: tell me about rivers and stones.`, swap)).status).toBe("completed");
    }
    // A check lands after its answer is delivered.
    await waitUntil(async () => {
      const [h, s] = await Promise.all([nodeView(honest), nodeView(swap)]);
      return h.checks.passed + h.checks.failed >= 2 && s.checks.passed + s.checks.failed >= 2;
    }, 60_000);
    const [h, s] = await Promise.all([nodeView(honest), nodeView(swap)]);
    process.stdout.write(`vLLM reference e2e: honest checks ${h.checks.passed} passed / ${h.checks.failed} failed; swap ${s.checks.passed} passed / ${s.checks.failed} failed${s.quarantined ? ", quarantined" : ""}\n`);
    expect(h.checks).toEqual({ passed: 2, failed: 0 });
    expect(s.checks.failed).toBeGreaterThanOrEqual(2);
    // The reference scored on its vLLM: one /v1/completions with prompt_logprobs a check.
    const scoring = honestFake.requests.filter((r) => r.path === "/v1/completions").slice(scoredBefore);
    expect(scoring.length).toBeGreaterThanOrEqual(4);
    expect(scoring.every((r) => (r.body as { prompt_logprobs?: number }).prompt_logprobs === 20)).toBe(true);
    const metrics = await (await fetch(`${network.processes.url}/metrics`)).text();
    expect(Number(/tessera_checks_total\{result="passed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/tessera_checks_total\{result="failed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  }, 300_000);
});
