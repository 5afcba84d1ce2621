import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyModel, waitUntil } from "@tessera/testkit";
import { ProcessNetwork } from "./process-network.js";

/**
 * Must-show 2 of the trust issue, on real processes: a coordinator and three honest daemons on the embedded engine,
 * all serving the same ~56M-parameter F16 file, and two cheating daemons under their own operators:
 *   swap:  a file of the same name with other weights (another seed);
 *   quant: the Q4_K_M quantisation of the same weights under the F16 file's name.
 * Every daemon is its own operator. The three honest nodes are named references (a new network has no trusted
 * tier yet). Checks run at the tier rates, as in production: every operator is new, so in probation, and each of its
 * answers is checked with probability 0.2 (1 once a failed check makes it suspect). The clients send a stream of
 * greedy jobs in rounds, one pinned to each node that is not quarantined (pinned so that a node the scheduler comes
 * to avoid is still seen), until the swap node is quarantined, the quant node has been checked and every honest node
 * has passed a check, or MAX_ROUNDS have run. The swap node needs two failed checks (design.md "Quarantine"), about six
 * rounds; the chance that 60 are not enough is about 2e-5 (the quant node's first check, at 0.2 a round, adds 0.8^60).
 */
const MODEL = "trust-50m";
const MAX_ROUNDS = 60;
let dir: string;
let network: ProcessNetwork;

const nodeView = (id: string) => network.nodeView(id);
const job = (content: string, nodeId?: string) => network.job({ model: MODEL, content, maxTokens: 16, nodeId });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-trust-"));
  for (const sub of ["honest", "swap", "quant"]) mkdirSync(join(dir, sub));
  const honest = join(dir, "honest", `${MODEL}.gguf`);
  const swap = join(dir, "swap", `${MODEL}.gguf`);
  const quant = join(dir, "quant", `${MODEL}.gguf`);
  // Q4_K blocks are 256 wide: the feed-forward width is 1536 instead of the preset's 1408 for all three files.
  const shape = { preset: "50m", feedForwardLength: 1536, vocab: "spm" } as const;
  await makeTinyModel({ path: honest, seed: 1, ...shape });
  await makeTinyModel({ path: swap, seed: 2, ...shape });
  await makeTinyModel({ path: quant, seed: 1, ...shape, weightType: "q4_k_m" });
  network = await ProcessNetwork.onFreePort(dir);
  const ids: Record<string, string> = {};
  for (const [name, path] of [["honest1", honest], ["honest2", honest], ["honest3", honest], ["swap", swap], ["quant", quant]] as const) ids[name] = await network.initNode(name, ["--backend", "embedded", "--model", path]);
  await network.start(["--reference-node", ids.honest1!, ids.honest2!, ids.honest3!], ids);
}, 300_000);

afterAll(async () => {
  await network?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("an open network with cheaters", () => {
  it("quarantines the node serving other weights, never an honest one, and shows it all on GET /api/v1/nodes/:id", async () => {
    let sent = 0;
    let rounds = 0;
    const done = async (): Promise<boolean> => {
      const [swap, quant, ...honest] = await Promise.all(["swap", "quant", "honest1", "honest2", "honest3"].map((name) => nodeView(network.daemons.get(name)!.id)));
      return swap!.quarantined && quant!.checks.passed + quant!.checks.failed > 0 && honest.every((v) => v.checks.passed > 0);
    };
    while (rounds < MAX_ROUNDS && !(await done())) {
      const open: Array<readonly [string, string]> = [];
      for (const [name, d] of network.daemons) if (!(await nodeView(d.id)).quarantined) open.push([name, d.id] as const);
      // A check may quarantine a node between the listing above and its pinned job: that job is then refused, or
      // fails, because of the quarantine, which is what this test waits for. Any other outcome is a failure.
      const answers = await Promise.all(
        open.map(async ([name, id]) => {
          const answer = await job(`Round ${rounds}: tell me about rivers and stones.`, id).catch((err: Error) => err);
          if (answer instanceof Error || answer.status !== "completed") {
            if ((await nodeView(id)).quarantined) return undefined;
            throw answer instanceof Error ? answer : new Error(`${name} round ${rounds}: job ${answer.id} ${answer.status}`);
          }
          return answer;
        }),
      );
      sent += answers.filter((answer) => answer !== undefined).length;
      rounds++;
      if (rounds % 5 === 0) process.stdout.write(`trust e2e: ${rounds} rounds, ${sent} jobs\n`);
    }
    // A check lands after its answer is delivered: give the last ones time to finish.
    await waitUntil(done, 60_000);

    const views = Object.fromEntries(await Promise.all([...network.daemons].map(async ([name, d]) => [name, await nodeView(d.id)] as const)));
    process.stdout.write(
      `trust e2e at tier rates, ${rounds} rounds, ${sent} jobs: ${Object.entries(views)
        .map(([name, v]) => `${name} checks ${v.checks.passed}/${v.checks.failed} p_cheat_factor ${v.reputation.verification.toFixed(3)} ${v.quarantined ? "QUARANTINED" : "ok"}`)
        .join("; ")}\n`,
    );
    for (const name of ["honest1", "honest2", "honest3"]) {
      expect(views[name], name).toMatchObject({ quarantined: false, checks: { failed: 0 } });
      expect(views[name]!.checks.passed, name).toBeGreaterThan(0);
    }
    expect(views.swap).toMatchObject({ quarantined: true, status: "online" });
    expect(views.swap!.checks.failed).toBeGreaterThanOrEqual(2);
    // The quantised node's fate is what the checks found; the figures are printed above.
    expect(views.quant!.checks.passed + views.quant!.checks.failed).toBeGreaterThan(0);

    // Every daemon signed what it streamed, and the coordinator found each signature matching what it relayed.
    const metrics = await (await fetch(`${network.url}/metrics`)).text();
    expect(Number(/tessera_result_commitments_total\{outcome="valid"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(sent);
    expect(metrics).not.toMatch(/outcome="invalid"/);

    // Unpinned work never reaches the quarantined node.
    for (let i = 0; i < 4; i++) {
      const done = await job(`After the checks, job ${i}.`);
      expect(done.status).toBe("completed");
      expect(done.node_id).not.toBe(network.daemons.get("swap")!.id);
    }
  }, 600_000);
});
