import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeView } from "@tessera/protocol";
import { FakeSglangScoring, type IdLevelModel, ManagedProcess, TESSERA_BIN, freePort, loadIdLevelModel, makeTinyModel, waitUntil } from "@tessera/testkit";

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
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };
const MODEL = "sglang-ref-tiny";
let dir: string;
let url: string;
let coordinator: ManagedProcess;
let honestModel: IdLevelModel;
let swapModel: IdLevelModel;
let honestFake: FakeSglangScoring;
let swapFake: FakeSglangScoring;
const daemons = new Map<string, { id: string; process: ManagedProcess }>();

async function run(name: string, args: string[]): Promise<string> {
  const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, ...args], { env: ENV });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`${name} failed:\n${proc.logText}`);
  return proc.logText;
}

async function initNode(name: string, sglangHost: string, extra: string[] = []): Promise<string> {
  const text = await run(`${name}-init`, ["init", "--home", join(dir, name), "--coordinator", url, "--backend", "sglang", "--sglang-host", sglangHost, ...extra]);
  return text.match(/\b([0-9a-f]{64})\b/)![1]!;
}

async function nodeView(id: string): Promise<NodeView> {
  return (await (await fetch(`${url}/api/v1/nodes/${id}`)).json()) as NodeView;
}

async function job(content: string, nodeId: string): Promise<{ status: string; node_id: string | null }> {
  const created = await fetch(`${url}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 12, temperature: 0, node_id: nodeId }),
  });
  const { id } = (await created.json()) as { id: string };
  let view = { status: "pending", node_id: null as string | null };
  await waitUntil(async () => {
    view = (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as typeof view;
    return view.status === "completed" || view.status === "failed";
  }, 60_000);
  return view;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-sglang-ref-"));
  const honestPath = join(dir, "honest.gguf");
  const swapPath = join(dir, "swap.gguf");
  await makeTinyModel({ path: honestPath, seed: 1, vocab: "spm" });
  await makeTinyModel({ path: swapPath, seed: 2, vocab: "spm" });
  honestModel = await loadIdLevelModel({ modelPath: honestPath, modelId: MODEL });
  swapModel = await loadIdLevelModel({ modelPath: swapPath, modelId: MODEL });
  honestFake = await FakeSglangScoring.start({ model: honestModel });
  swapFake = await FakeSglangScoring.start({ model: swapModel });
  url = `http://127.0.0.1:${await freePort()}`;
  const ids = {
    honest: await initNode("honest", honestFake.url),
    reference: await initNode("reference", honestFake.url, ["--reference-scoring", "on", "--score-eos-token-ids", String(honestModel.eosToken)]),
    swap: await initNode("swap", swapFake.url),
  };
  coordinator = new ManagedProcess(
    "coordinator",
    process.execPath,
    [TESSERA_BIN, "coordinator", "start", "--open", "--port", url.split(":").at(-1)!, "--data-dir", join(dir, "coordinator"), "--check-rate", "1", "--canary-interval", "0", "--reference-node", ids.reference],
    { env: ENV, logFile: join(dir, "coordinator.log") },
  );
  await coordinator.waitFor(/listening on/);
  for (const [name, id] of Object.entries(ids)) {
    const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, "start", "--home", join(dir, name)], { env: ENV, logFile: join(dir, `${name}.log`) });
    daemons.set(name, { id, process: proc });
    await waitUntil(async () => (await nodeView(id).catch(() => undefined))?.status === "online", 60_000);
  }
}, 300_000);

afterAll(async () => {
  await Promise.all([...daemons.values()].map((d) => d.process.stop(5_000)));
  await coordinator?.stop(5_000);
  await honestFake?.close();
  await swapFake?.close();
  await honestModel?.close();
  await swapModel?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const scoringCalls = (f: FakeSglangScoring) => f.requests.filter((r) => r.path === "/generate" && (r.body as { logprob_start_len?: unknown }).logprob_start_len !== undefined);
const streamedGenerates = (f: FakeSglangScoring) => f.requests.filter((r) => r.path === "/generate" && (r.body as { stream?: unknown }).stream === true);

describe("spot checks with an SGLang reference", () => {
  it("the honest SGLang node passes its checks, the node serving other weights fails them and is quarantined, scored through input_token_logprobs", async () => {
    const honest = daemons.get("honest")!.id;
    const swap = daemons.get("swap")!.id;
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
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(Number(/tessera_checks_total\{result="passed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    expect(Number(/tessera_checks_total\{result="failed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  }, 300_000);
});
