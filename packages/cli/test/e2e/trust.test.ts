import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeView } from "@tessera/protocol";
import { ManagedProcess, TESSERA_BIN, freePort, makeTinyModel, waitUntil } from "@tessera/testkit";

/**
 * Must-show 2 of the trust issue, on real processes: a coordinator and three honest daemons on the embedded engine,
 * all serving the same ~56M-parameter F16 file, and two cheating daemons under their own operators:
 *   swap:  a file of the same name with other weights (another seed);
 *   quant: the Q4_K_M quantisation of the same weights under the F16 file's name.
 * Every daemon is its own operator. The three honest nodes are named references (a new network has no trusted
 * tier yet). Checks run at the tier rates, as in production: every operator is new, so in probation, and each of its
 * answers is checked with probability 0.2 (1 once a failed check makes it suspect). The clients send a stream of
 * greedy jobs in rounds, one pinned to each node that is not quarantined (pinned so that a node the scheduler comes
 * to avoid is still seen), until the swap node is quarantined and every honest node has passed a check, or
 * MAX_ROUNDS have run. The swap node needs two failed checks (design.md "Quarantine"), about six rounds; the chance
 * that 60 are not enough is about 2e-5.
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "" };
const MODEL = "trust-50m";
const MAX_ROUNDS = 60;
let dir: string;
let url: string;
let coordinator: ManagedProcess;
const daemons = new Map<string, { id: string; process: ManagedProcess }>();

async function run(name: string, args: string[]): Promise<string> {
  const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, ...args], { env: ENV });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`${name} failed:\n${proc.logText}`);
  return proc.logText;
}

async function initNode(name: string, modelPath: string): Promise<string> {
  const home = join(dir, name);
  const text = await run(`${name}-init`, ["init", "--home", home, "--coordinator", url, "--backend", "embedded", "--model", modelPath]);
  return text.match(/\b([0-9a-f]{64})\b/)![1]!;
}

async function nodeView(id: string): Promise<NodeView> {
  return (await (await fetch(`${url}/api/v1/nodes/${id}`)).json()) as NodeView;
}

async function job(content: string, nodeId?: string): Promise<{ id: string; node_id: string | null; status: string; error?: string }> {
  const created = await fetch(`${url}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 16, temperature: 0, ...(nodeId ? { node_id: nodeId } : {}) }),
  });
  const { id } = (await created.json()) as { id: string };
  let view: { id: string; node_id: string | null; status: string; error?: string } = { id, node_id: null, status: "pending" };
  await waitUntil(async () => {
    view = (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as typeof view;
    return view.status === "completed" || view.status === "failed";
  }, 60_000);
  return view;
}

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
  url = `http://127.0.0.1:${await freePort()}`;
  const ids: Record<string, string> = {};
  for (const [name, path] of [["honest1", honest], ["honest2", honest], ["honest3", honest], ["swap", swap], ["quant", quant]] as const) ids[name] = await initNode(name, path);
  const port = url.split(":").at(-1)!;
  coordinator = new ManagedProcess(
    "coordinator",
    process.execPath,
    [TESSERA_BIN, "coordinator", "start", "--open", "--port", port, "--data-dir", join(dir, "coordinator"), "--reference-node", ids.honest1!, ids.honest2!, ids.honest3!],
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
  rmSync(dir, { recursive: true, force: true });
});

describe("an open network with cheaters", () => {
  it("quarantines the node serving other weights, never an honest one, and shows it all on GET /api/v1/nodes/:id", async () => {
    let sent = 0;
    let rounds = 0;
    const done = async (): Promise<boolean> => {
      const [swap, ...honest] = await Promise.all(["swap", "honest1", "honest2", "honest3"].map((name) => nodeView(daemons.get(name)!.id)));
      return swap!.quarantined && honest.every((v) => v.checks.passed > 0);
    };
    while (rounds < MAX_ROUNDS && !(await done())) {
      const open: Array<readonly [string, string]> = [];
      for (const [name, d] of daemons) if (!(await nodeView(d.id)).quarantined) open.push([name, d.id] as const);
      const answers = await Promise.all(open.map(([, id]) => job(`Round ${rounds}: tell me about rivers and stones.`, id)));
      answers.forEach((answer, i) => expect(answer.status, `${open[i]![0]} round ${rounds}`).toBe("completed"));
      sent += answers.length;
      rounds++;
      if (rounds % 5 === 0) process.stdout.write(`trust e2e: ${rounds} rounds, ${sent} jobs\n`);
    }
    // A check lands after its answer is delivered: give the last ones time to finish.
    await waitUntil(done, 60_000);

    const views = Object.fromEntries(await Promise.all([...daemons].map(async ([name, d]) => [name, await nodeView(d.id)] as const)));
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
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(Number(/tessera_result_commitments_total\{outcome="valid"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(sent);
    expect(metrics).not.toMatch(/outcome="invalid"/);

    // Unpinned work never reaches the quarantined node.
    for (let i = 0; i < 4; i++) {
      const done = await job(`After the checks, job ${i}.`);
      expect(done.status).toBe("completed");
      expect(done.node_id).not.toBe(daemons.get("swap")!.id);
    }
  }, 600_000);
});
