import { describe, expect, it } from "vitest";
import { decodeActivationFrame, encodeActivationFrame, type CoordinatorMessage } from "@tessera/protocol";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { NodeRegistry } from "../registry.js";
import { StageChecks, type StageRun } from "../trust/stage-checks.js";
import type { NodeSession } from "../workers/node-session.js";
import { SessionWorker } from "../sessions/session-worker.js";
import { sessionMessenger } from "../sessions/session-messenger.js";
import { ShardingManager } from "./sharding-manager.js";

/**
 * The stage checks wired to the sharding manager as the coordinator wires them, with node sessions faked: a span no
 * reference holds is loaded on a named node, the saved frames go to it under a fresh request id, its answers come
 * back through the manager's binary handler, and the verdict lands on the checked node alone. A reference answering
 * with the wrong shape, or with bytes that are no frame, changes nobody's standing.
 */
const SHA = "a".repeat(64);
const COLS = 4;

function setup() {
  const clock = new ManualClock();
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger("debug", { format: "json", stdout: { write: (l: string) => void lines.push(JSON.parse(l)) } });
  const registry = new NodeRegistry(clock, 60_000, { onOffline() {}, onOnline() {} });
  const sent = new Map<string, { json: CoordinatorMessage[]; binary: Uint8Array[] }>();
  for (const id of ["checked", "ref"]) {
    registry.register({ type: "register", public_key: id, version: "t", hardware: { cpu_cores: 1, ram_mb: 1, gpus: [] }, models: [], max_concurrency: 1 }, `op-${id}`);
    const box = { json: [] as CoordinatorMessage[], binary: [] as Uint8Array[] };
    sent.set(id, box);
    const session: NodeSession = { nodeId: id, send: (m) => void box.json.push(m), sendBinary: (d) => void box.binary.push(d), rttMs: () => 1, close: () => undefined };
    registry.attach(id, new SessionWorker(session), session);
  }
  const manager = new ShardingManager({ registry, jobs: { accepted() {}, rejected() {}, part() {}, failed() {}, lost() {} }, clock, logger, replicas: 1 });
  const recorded: Array<{ nodeId: string; passed: boolean }> = [];
  const results: string[] = [];
  const checks = new StageChecks({
    registry,
    messenger: sessionMessenger(registry),
    standing: { checkRate: () => 1, recordCheck: (nodeId, r) => void recorded.push({ nodeId, passed: r.passed }), isQuarantined: () => false, tier: () => "normal" },
    replays: manager,
    clock,
    logger,
    random: () => 0.99, // drawn; the one reference; step 1 of 2, so both steps are replayed
    namedReferences: new Set(["ref"]),
    rateOverride: undefined,
    timeoutMs: 60_000,
    metrics: { checked: (r) => void results.push(r), skipped: (r) => void results.push(`skipped:${r}`) },
  });
  // Both nodes offer the 4-layer file; placement (one chain) puts its spans on them.
  for (const id of ["checked", "ref"]) {
    manager.onStageMessage(id, { type: "stage.offer", shards: [{ model: "m", sha256: SHA, layer_count: 4, bytes_per_layer: 1000, free_memory_bytes: 1e9 }] });
  }
  return { manager, checks, sent, recorded, results, lines, clock };
}

const hidden = (seq: number, rows: number, f: (i: number) => number, requestId = "job-1", stageId = 1) =>
  encodeActivationFrame({ requestId, stageId, seq, rows, cols: COLS, positions: Int32Array.from({ length: rows }, (_, i) => i), dtype: "f32", data: Float32Array.from({ length: rows * COLS }, (_, i) => f(i)) });

/** A middle span [1, 3) of "checked" that added 1 to its inputs over a prefill of 3 rows and one decode step. */
function run(): StageRun {
  const inputs = [hidden(0, 3, (i) => i), hidden(1, 1, () => 7)];
  const outputs = [hidden(0, 3, (i) => i + 1), hidden(1, 1, () => 8)];
  return { nodeId: "checked", start: 1, end: 3, inputs, outputs };
}

/** Loads the span the check asked "ref" for; returns the stage id. */
function answerLoad(t: ReturnType<typeof setup>): number {
  const load = t.sent.get("ref")!.json.find((m) => m.type === "stage.load" && m.start === 1 && m.end === 3);
  expect(load).toBeDefined();
  const stageId = (load as { stage_id: number }).stage_id;
  t.manager.onStageMessage("ref", { type: "stage.loaded", stage_id: stageId, ms_per_layer: 1 });
  return stageId;
}

const ticks = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};

/** "ref" answers each replayed frame as `answer` makes it, through the manager's binary handler, one at a time. */
async function answerReplay(t: ReturnType<typeof setup>, answer: (frame: ReturnType<typeof decodeActivationFrame>) => Uint8Array): Promise<void> {
  const frames = t.sent.get("ref")!.binary;
  for (let handled = 0; handled < 2; handled++) {
    await ticks();
    expect(frames.length, `replayed frames after ${handled} answers`).toBe(handled + 1);
    t.manager.onBinary("ref", answer(decodeActivationFrame(frames[handled]!)));
  }
  await ticks();
}

describe("stage checks through the sharding manager", () => {
  it("loads the span on the named reference, replays under a fresh id and judges the checked node alone", async () => {
    const t = setup();
    t.checks.afterRequest({ requestId: "job-1", sha256: SHA, model: "m", stages: [run()] });
    const stageId = answerLoad(t);
    await answerReplay(t, (f) => {
      expect(f.requestId).not.toBe("job-1");
      expect(f.stageId).toBe(stageId);
      return hidden(f.seq, f.rows, (i) => (f.data[i] as number) + 1, f.requestId, f.stageId);
    });
    expect(t.recorded).toEqual([{ nodeId: "checked", passed: true }]);
    expect(t.sent.get("ref")!.binary.map((b) => decodeActivationFrame(b).seq)).toEqual([0, 1]);
    expect(t.sent.get("ref")!.json.at(-1)).toMatchObject({ type: "stage.drop" });
  });

  it("a lying stage fails and is named", async () => {
    const t = setup();
    t.checks.afterRequest({ requestId: "job-1", sha256: SHA, model: "m", stages: [run()] });
    answerLoad(t);
    await answerReplay(t, (f) => hidden(f.seq, f.rows, (i) => (f.data[i] as number) + 2, f.requestId, f.stageId));
    expect(t.recorded).toEqual([{ nodeId: "checked", passed: false }]);
    expect(t.lines.find((l) => l.msg === "stage check failed")).toMatchObject({ node: "checked", layers: "[1, 3)", reference: "ref" });
  });

  it("a reference answering the wrong shape abandons the check with a clear message, charging nobody", async () => {
    const t = setup();
    t.checks.afterRequest({ requestId: "job-1", sha256: SHA, model: "m", stages: [run()] });
    answerLoad(t);
    await answerReplay(t, (f) => hidden(f.seq, f.rows + 1, () => 1, f.requestId, f.stageId));
    expect(t.recorded).toEqual([]);
    expect(t.results).toEqual(["abandoned"]);
    expect(t.lines.find((l) => l.msg === "stage check abandoned")?.why).toMatch(/cannot be compared: \[bad_request\] replay answer: 4 rows, expected 3/);
  });

  it("bytes that are no frame are dropped at the edge; the check is abandoned when its time is up, charging nobody", async () => {
    const t = setup();
    t.checks.afterRequest({ requestId: "job-1", sha256: SHA, model: "m", stages: [run()] });
    answerLoad(t);
    await ticks();
    t.manager.onBinary("ref", new Uint8Array(80).fill(7));
    expect(t.lines.some((l) => l.msg === "node sent a bad activation frame; ignored")).toBe(true);
    t.clock.advance(60_001);
    t.checks.tick();
    expect(t.recorded).toEqual([]);
    expect(t.results).toEqual(["abandoned"]);
  });
});
