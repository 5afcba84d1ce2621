import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeView } from "@tessera/protocol";
import { ManagedProcess, TESSERA_BIN, freePort, makeTinyModel, waitUntil } from "@tessera/testkit";

/**
 * Trust issue §4 "Sharded models" on real processes: a three-layer model held as spans by three stage daemons, each
 * its own operator, one layer each (`TESSERA_SHARD_REPLICAS=1`: one chain, so every request passes every daemon). One
 * daemon lies: it runs with the test-only `TESSERA_TEST_STAGE_PERTURB`, so every answer of its span is perturbed
 * before it is handed on, while it offers the file's true hash. At `--check-rate 1` every stage of every request is
 * checked: its saved inputs are replayed on a named reference (the two honest daemons), which loads the span for it
 * since no replica holds it. The liar is named and quarantined; the honest stage nodes never are, not even the one
 * that was fed the liar's activations; requests go on without the liar (an honest daemon now holds its span).
 */
const ENV = { ...process.env, TESSERA_HOME: "", TESSERA_BACKEND: "", TESSERA_COORDINATOR_URL: "", TESSERA_IDLE_MODE: "always", TESSERA_SHARD_REPLICAS: "1" };
const MODEL = "stagecheck-tiny";
let dir: string;
let url: string;
let coordinator: ManagedProcess;
const daemons = new Map<string, { id: string; process: ManagedProcess }>();

async function initNode(name: string): Promise<string> {
  const proc = new ManagedProcess(`${name}-init`, process.execPath, [TESSERA_BIN, "init", "--home", join(dir, name), "--coordinator", url], { env: ENV });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`${name} init failed:\n${proc.logText}`);
  return proc.logText.match(/\b([0-9a-f]{64})\b/)![1]!;
}

async function nodeView(id: string): Promise<NodeView> {
  return (await (await fetch(`${url}/api/v1/nodes/${id}`)).json()) as NodeView;
}

async function chat(content: string): Promise<{ status: number; body: { error?: unknown; choices?: unknown[] } }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content }], max_tokens: 6, temperature: 0 }),
  });
  return { status: res.status, body: (await res.json()) as { error?: unknown; choices?: unknown[] } };
}

function spanOf(name: string): [number, number] | undefined {
  const all = [...daemons.get(name)!.process.logText.matchAll(/layers \[(\d+), (\d+)\) of \S+ loaded/g)];
  const last = all.at(-1);
  return last ? [Number(last[1]), Number(last[2])] : undefined;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-stage-checks-"));
  const modelPath = join(dir, `${MODEL}.gguf`);
  await makeTinyModel({ path: modelPath, seed: 5, vocab: "spm", blockCount: 3 });
  url = `http://127.0.0.1:${await freePort()}`;
  const ids: Record<string, string> = {};
  for (const name of ["honest1", "honest2", "liar"]) ids[name] = await initNode(name);
  coordinator = new ManagedProcess(
    "coordinator",
    process.execPath,
    [TESSERA_BIN, "coordinator", "start", "--open", "--port", url.split(":").at(-1)!, "--data-dir", join(dir, "coordinator"), "--check-rate", "1", "--reference-node", ids.honest1!, ids.honest2!],
    { env: ENV, logFile: join(dir, "coordinator.log") },
  );
  await coordinator.waitFor(/listening on/);
  for (const [name, id] of Object.entries(ids)) {
    const env = name === "liar" ? { ...ENV, TESSERA_TEST_STAGE_PERTURB: "1" } : ENV;
    const proc = new ManagedProcess(name, process.execPath, [TESSERA_BIN, "start", "--home", join(dir, name), "--stage-model", modelPath], { env, logFile: join(dir, `${name}.log`) });
    daemons.set(name, { id, process: proc });
    await waitUntil(async () => (await nodeView(id).catch(() => undefined))?.status === "online", 60_000);
  }
  // One chain of one-layer spans, one on each daemon.
  await waitUntil(() => new Set([...daemons.keys()].map((n) => spanOf(n)?.[0])).size === 3 && [...daemons.keys()].every((n) => spanOf(n)), 60_000);
}, 300_000);

afterAll(async () => {
  await Promise.all([...daemons.values()].map((d) => d.process.stop(5_000)));
  await coordinator?.stop(5_000);
  rmSync(dir, { recursive: true, force: true });
});

describe("checking one stage of a sharded model", () => {
  it("names and quarantines the lying stage's node, never an honest one, and routes around it", async () => {
    const liar = daemons.get("liar")!;
    // Every request passes the liar (until an honest daemon loads its span for a check and paths may use that copy).
    let requests = 0;
    for (; requests < 20 && !(await nodeView(liar.id)).quarantined; requests++) {
      const { status } = await chat(`question ${requests}`);
      expect(status).toBe(200);
    }
    await waitUntil(async () => (await nodeView(liar.id)).quarantined, 30_000).catch((err: unknown) => {
      const lines = coordinator.logText.split("\n").filter((l) => /stage check|sharded (model placed|request routed)|stage failover|stage loaded/.test(l));
      throw new Error(`${String(err)}; ${requests} requests; coordinator:\n${[...lines.slice(0, 12), "…", ...lines.slice(-6)].join("\n")}`);
    });
    const log = coordinator.logText;
    const views = Object.fromEntries(await Promise.all([...daemons].map(async ([name, d]) => [name, await nodeView(d.id)] as const)));
    const summary = Object.entries(views).map(([name, v]) => `${name} span ${JSON.stringify(spanOf(name))} checks ${v.checks.passed}/${v.checks.failed} ${v.quarantined ? "QUARANTINED" : "ok"}`).join("; ");
    console.log(`after ${requests} requests: ${summary}`);
    expect(views.liar).toMatchObject({ quarantined: true, status: "online" });
    expect(views.liar!.checks.failed).toBeGreaterThanOrEqual(2);
    for (const name of ["honest1", "honest2"]) expect(views[name], name).toMatchObject({ quarantined: false, checks: { failed: 0 } });
    // The failure names the liar's node and its layers, never an honest node.
    const failed = [...log.matchAll(/"node":"([0-9a-f]{12})"[^\n]*stage check failed/g)].map((m) => m[1]);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(new Set(failed)).toEqual(new Set([liar.id.slice(0, 12)]));
    // Some honest stage passed its check, the one the liar's activations were fed to among them when it ran after it.
    expect(Object.values(views).reduce((n, v) => n + v.checks.passed, 0)).toBeGreaterThan(0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/tessera_stage_checks_total\{result="failed"\} [2-9]/);
    expect(metrics).toMatch(/tessera_stage_checks_total\{result="passed"\} [1-9]/);

    // From now on the quarantined node is on no path; requests still complete.
    const mark = coordinator.logText.length;
    for (let i = 0; i < 3; i++) expect((await chat(`after ${i}`)).status).toBe(200);
    const routed = [...coordinator.logText.slice(mark).matchAll(/"stages":"([^"]+)"[^\n]*sharded request routed/g)].map((m) => m[1]!);
    expect(routed).toHaveLength(3);
    for (const stages of routed) expect(stages).not.toContain(liar.id.slice(0, 8));
  }, 240_000);
});
