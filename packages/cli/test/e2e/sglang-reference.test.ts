import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeSglangScoring, waitUntil } from "@tessera/testkit";
import { type ReferenceScoringNetwork, startReferenceScoringNetwork } from "./reference-scoring-network.js";

/**
 * A coordinator's spot checks of SGLang nodes served by an SGLang-backed reference, on real processes: a coordinator
 * checking every answer (`--check-rate 1`) and three daemons on the SGLang backend, each its own operator, in front of
 * id-level SGLang fakes backed by real models (testkit's FakeSglangScoring):
 *   honest:    an SGLang serving the model;
 *   reference: an SGLang serving the same model, with --reference-scoring on and its EOS id, named --reference-node;
 *   swap:      an SGLang serving other weights (another seed) under the same name.
 * The nodes answer through SGLang's streamed /generate, so their answers carry token ids; greedy jobs pinned to the
 * honest node pass their checks, scored by the reference through input_token_logprobs; jobs pinned to the swap node
 * fail theirs. Nothing about the checks is faked: the tokens, the log-probabilities and the scores are the models'
 * own, through SGLang's wire format.
 */
const MODEL = "sglang-ref-tiny";
let network: ReferenceScoringNetwork<FakeSglangScoring>;

const nodeView = (id: string) => network.processes.nodeView(id);
const job = (content: string, nodeId: string) => network.processes.job({ model: MODEL, content, maxTokens: 12, nodeId });

beforeAll(async () => {
  network = await startReferenceScoringNetwork({
    model: MODEL,
    tmpPrefix: "tessera-sglang-ref-",
    startFake: (model) => FakeSglangScoring.start({ model }),
    backendArgs: (fakeUrl) => ["--backend", "sglang", "--sglang-host", fakeUrl],
    referenceArgs: (model) => ["--reference-scoring", "on", "--score-eos-token-ids", String(model.eosToken)],
  });
}, 300_000);

afterAll(async () => {
  await network?.stop();
});

const scoringCalls = (f: FakeSglangScoring) => f.requests.filter((r) => r.path === "/generate" && (r.body as { logprob_start_len?: unknown }).logprob_start_len !== undefined);
const streamedGenerates = (f: FakeSglangScoring) => f.requests.filter((r) => r.path === "/generate" && (r.body as { stream?: unknown }).stream === true);

describe("spot checks with an SGLang reference", () => {
  it("the honest SGLang node passes its checks, the node serving other weights fails them and is quarantined, scored through input_token_logprobs", async () => {
    const { honestFake, swapFake, honestId: honest, swapId: swap } = network;
    const scoredBefore = scoringCalls(honestFake).length;
    for (let i = 0; i < 2; i++) {
      expect((await job(`Job ${i}: tell me about rivers and stones.`, honest)).status).toBe("completed");
      expect((await job(`Job ${i}: tell me about rivers and stones.`, swap)).status).toBe("completed");
    }
    // The answers came from SGLang's streamed /generate (ids in every chunk), not the chat route.
    expect(streamedGenerates(honestFake).length).toBeGreaterThanOrEqual(2);
    expect(streamedGenerates(swapFake).length).toBeGreaterThanOrEqual(2);
    // A check lands after its answer is delivered.
    await waitUntil(async () => {
      const [h, s] = await Promise.all([nodeView(honest), nodeView(swap)]);
      return h.checks.passed + h.checks.failed >= 2 && s.checks.passed + s.checks.failed >= 2;
    }, 60_000);
    const [h, s] = await Promise.all([nodeView(honest), nodeView(swap)]);
    process.stdout.write(`SGLang reference e2e: honest checks ${h.checks.passed} passed / ${h.checks.failed} failed; swap ${s.checks.passed} passed / ${s.checks.failed} failed${s.quarantined ? ", quarantined" : ""}\n`);
    expect(h.checks).toEqual({ passed: 2, failed: 0 });
    expect(s.checks.failed).toBeGreaterThanOrEqual(2);
    expect(s.quarantined).toBeTruthy();
    expect(h.quarantined).toBeFalsy();
    // The reference scored on its SGLang: one /generate with input logprobs a check.
    const scoring = scoringCalls(honestFake).slice(scoredBefore);
    expect(scoring.length).toBeGreaterThanOrEqual(4);
    expect(scoring.every((r) => (r.body as { return_logprob?: unknown; top_logprobs_num?: unknown }).return_logprob === true && (r.body as { top_logprobs_num?: unknown }).top_logprobs_num === 20)).toBe(true);
    const metrics = await (await fetch(`${network.processes.url}/metrics`)).text();
    expect(Number(/tessera_checks_total\{result="passed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/tessera_checks_total\{result="failed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  }, 300_000);
});
