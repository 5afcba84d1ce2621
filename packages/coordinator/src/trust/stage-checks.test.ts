import { describe, expect, it } from "vitest";
import { ACTIVATION_FLAG_SAMPLED, decodeActivationFrame, encodeActivationFrame } from "@tessera/protocol";
import type { Logger } from "../logger.js";
import type { NodeRegistry } from "../registry.js";
import { type HeldSpan, StageChecks, type StageChecksDeps, type StageRun } from "./stage-checks.js";

const quiet = { info() {}, warn() {}, debug() {}, error() {} } as unknown as Logger;
const COLS = 4;

function frame(seq: number, rows: number, value: (i: number) => number, requestId = "job"): Uint8Array {
  return encodeActivationFrame({ requestId, stageId: 1, seq, rows, cols: COLS, positions: Int32Array.from({ length: rows }, (_, i) => i), dtype: "f32", data: Float32Array.from({ length: rows * COLS }, (_, i) => value(i)) });
}
const token = (seq: number, id: number, requestId = "job") => encodeActivationFrame({ requestId, stageId: 1, seq, rows: 1, cols: 1, positions: Int32Array.of(seq), dtype: "i32", data: Int32Array.of(id), flags: ACTIVATION_FLAG_SAMPLED, rngState: seq, tokenLogit: id / 2, logitScale: 10 });

/** A middle stage over 3 steps (prompt of 4 rows, then 1 row a step) whose outputs add 1 to every input value. */
function middleRun(nodeId = "checked"): StageRun {
  const inputs = [frame(0, 4, (i) => i), frame(1, 1, () => 2), frame(2, 1, () => 3)];
  const outputs = inputs.map((f) => {
    const d = decodeActivationFrame(f);
    return frame(d.seq, d.rows, (i) => (d.data[i] as number) + 1);
  });
  return { nodeId, start: 2, end: 4, inputs, outputs };
}

interface Sent { ref: HeldSpan; frames: readonly Uint8Array[]; resolve(answers: Uint8Array[]): void; reject(err: Error): void; cancelled: boolean }

function setup(o: { random?: () => number; rate?: number; maxBytes?: number; loaded?: boolean; refs?: Array<{ id: string; operator?: string; named?: boolean; quarantined?: boolean; draining?: boolean }> } = {}) {
  const refs = o.refs ?? [{ id: "ref", named: true }];
  const nodes = new Map<string, { id: string; operatorId: string; online: boolean; session: object; draining: boolean }>();
  nodes.set("checked", { id: "checked", operatorId: "op-checked", online: true, session: {}, draining: false });
  for (const r of refs) nodes.set(r.id, { id: r.id, operatorId: r.operator ?? `op-${r.id}`, online: true, session: {}, draining: r.draining ?? false });
  const recorded: Array<{ nodeId: string; passed: boolean }> = [];
  const metrics: string[] = [];
  const sent: Sent[] = [];
  const loads: string[] = [];
  let now = 0;
  const deps: StageChecksDeps = {
    registry: { get: (id: string) => nodes.get(id) } as unknown as NodeRegistry,
    messenger: { send: () => true, reachable: (id) => nodes.has(id) },
    standing: {
      checkRate: () => 0.05,
      recordCheck: (nodeId, r) => void recorded.push({ nodeId, passed: r.passed }),
      isQuarantined: (id) => refs.some((r) => r.id === id && r.quarantined),
      tier: () => "normal",
    },
    replays: {
      heldSpans: (_sha, start, end) => (o.loaded === false ? [] : refs.map((r, i) => ({ nodeId: r.id, stageId: 10 + i, start, end }))),
      offeringNodes: () => ["checked", ...refs.map((r) => r.id)],
      loadSpan: async (_sha, start, end, nodeId) => {
        loads.push(`${nodeId}[${start},${end})`);
        return { nodeId, stageId: 99, start, end };
      },
      replay(ref, frames) {
        const s = { ref, frames, cancelled: false } as Sent;
        const answer = new Promise<Uint8Array[]>((resolve, reject) => Object.assign(s, { resolve, reject }));
        sent.push(s);
        return { requestId: "replay", answer, cancel: () => void (s.cancelled = true) };
      },
    },
    clock: { now: () => now } as StageChecksDeps["clock"],
    logger: quiet,
    random: o.random ?? (() => 0),
    namedReferences: new Set(refs.filter((r) => r.named).map((r) => r.id)),
    rateOverride: o.rate,
    ...(o.maxBytes ? { maxBytes: o.maxBytes } : {}),
    timeoutMs: 60_000,
    metrics: { checked: (r) => void metrics.push(r), skipped: (r) => void metrics.push(`skipped:${r}`) },
  };
  const checks = new StageChecks(deps);
  return { checks, recorded, metrics, sent, loads, advance: (ms: number) => (now += ms) };
}

const request = (stages: StageRun[]) => ({ requestId: "job", sha256: "f".repeat(64), model: "m", stages });
const flush = () => new Promise((r) => setTimeout(r, 0));
/** A reference's answers to a replay: `add` added to every input value of each frame. */
const middleAnswers = (s: Sent, add: number) => s.frames.map((f) => {
  const d = decodeActivationFrame(f);
  return frame(d.seq, d.rows, (i) => (d.data[i] as number) + add, "replay");
});

describe("drawing stages", () => {
  it("draws each stage with its node's tier rate and picks one step uniformly; replays the inputs up to it", () => {
    // random(): the draw (0.04 < 0.05), then the reference (0), then the step (0.7 → step 2 of 3).
    const draws = [0.04, 0, 0.7];
    const { checks, sent } = setup({ random: () => draws.shift() ?? 0 });
    const run = middleRun();
    checks.afterRequest(request([run]));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.frames.map((f) => decodeActivationFrame(f).seq)).toEqual([0, 1, 2]);
    // Above the rate: not drawn.
    const again = setup({ random: () => 0.06 });
    again.checks.afterRequest(request([middleRun()]));
    expect(again.sent).toHaveLength(0);
  });

  it("past the byte cap replays the prefill alone; a prefill past it is skipped as too_large", () => {
    const draws = [0, 0, 0.99];
    // Frames of this run: prefill 140 bytes in and out, decode steps 80: steps 0..2 need 600 bytes, the prefill 280.
    const t = setup({ random: () => draws.shift() ?? 0, rate: 1, maxBytes: 300 });
    t.checks.afterRequest(request([middleRun()]));
    expect(t.sent[0]!.frames.map((f) => decodeActivationFrame(f).seq)).toEqual([0]);
    const tiny = setup({ rate: 1, maxBytes: 100 });
    tiny.checks.afterRequest(request([middleRun()]));
    expect(tiny.metrics).toEqual(["skipped:too_large"]);
  });

  it("a reference is another operator's, named or trusted, not quarantined nor draining; none → skipped", () => {
    for (const refs of [[{ id: "same-op", operator: "op-checked", named: true }], [{ id: "untrusted" }], [{ id: "q", named: true, quarantined: true }], [{ id: "d", named: true, draining: true }]]) {
      const t = setup({ rate: 1, refs });
      t.checks.afterRequest(request([middleRun()]));
      expect(t.sent).toHaveLength(0);
      expect(t.metrics).toEqual(["skipped:no_reference"]);
    }
  });
});

describe("a span no eligible node holds", () => {
  it("is loaded on an eligible node offering the file, then replayed there", async () => {
    const t = setup({ rate: 1, loaded: false, refs: [{ id: "untrusted" }, { id: "ref", named: true }] });
    t.checks.afterRequest(request([middleRun()]));
    await flush();
    expect(t.loads).toEqual(["ref[2,4)"]);
    expect(t.sent.map((s) => [s.ref.nodeId, s.ref.stageId])).toEqual([["ref", 99]]);
    t.sent[0]!.resolve(middleAnswers(t.sent[0]!, 1));
    await flush();
    expect(t.recorded).toEqual([{ nodeId: "checked", passed: true }]);
  });
});

describe("verdicts", () => {
  it("charges only the stage's own node: a lying middle stage fails, the honest last stage after it passes", async () => {
    const t = setup({ rate: 1, refs: [{ id: "ref", named: true }, { id: "ref2" }] });
    const liar = middleRun("checked");
    const honestLast: StageRun = { nodeId: "ref2", start: 4, end: 6, inputs: liar.outputs, outputs: [token(0, 5), token(1, 6), token(2, 7)] };
    t.checks.afterRequest(request([liar, honestLast]));
    // Both replays go to "ref", the only named reference; ref2, neither named nor trusted, references nobody.
    expect(t.sent.map((s) => s.ref.nodeId)).toEqual(["ref", "ref"]);
    // The reference's middle span computes +2 from the same inputs where the liar handed on +1.
    t.sent[0]!.resolve(middleAnswers(t.sent[0]!, 2));
    // The reference's last span samples what ref2 sampled, from the liar's (wrong) activations it was fed too.
    t.sent[1]!.resolve([token(0, 5, "replay")]);
    await flush();
    expect(t.recorded).toEqual([{ nodeId: "checked", passed: false }, { nodeId: "ref2", passed: true }]);
    expect(t.metrics).toEqual(["failed", "passed"]);
  });

  it("an honest stage passes", async () => {
    const t = setup({ rate: 1 });
    const run = middleRun();
    t.checks.afterRequest(request([run]));
    t.sent[0]!.resolve(middleAnswers(t.sent[0]!, 1));
    await flush();
    expect(t.recorded).toEqual([{ nodeId: "checked", passed: true }]);
  });

  it("compares every replayed step: a stage that lies only on a decode step fails", async () => {
    const draws = [0, 0, 0.99]; // drawn, reference, step 2: steps 0..2 replayed
    const t = setup({ random: () => draws.shift() ?? 0, rate: 1 });
    t.checks.afterRequest(request([middleRun()]));
    const answers = middleAnswers(t.sent[0]!, 1);
    answers[1] = middleAnswers(t.sent[0]!, 5)[1]!; // the reference disagrees on step 1 alone
    t.sent[0]!.resolve(answers);
    await flush();
    expect(t.recorded).toEqual([{ nodeId: "checked", passed: false }]);
  });

  it("a malformed, oversized-shape or wrong-kind replay answer abandons the check and charges nobody", async () => {
    for (const bad of [[new Uint8Array([1, 2, 3])], [frame(0, 9, () => 1, "replay")], [token(0, 1, "replay")], []]) {
      const t = setup({ rate: 1 });
      t.checks.afterRequest(request([middleRun()]));
      t.sent[0]!.resolve(bad);
      await flush();
      expect(t.recorded).toEqual([]);
      expect(t.metrics).toEqual(["abandoned"]);
    }
  });

  it("a reference that fails or stays silent past the timeout abandons the check", async () => {
    const t = setup({ rate: 1 });
    t.checks.afterRequest(request([middleRun()]));
    t.sent[0]!.reject(new Error("stage.error"));
    await flush();
    const slow = setup({ rate: 1 });
    slow.checks.afterRequest(request([middleRun()]));
    slow.advance(60_001);
    slow.checks.tick();
    expect(slow.sent[0]!.cancelled).toBe(true);
    expect(slow.checks.inFlight).toBe(0);
    for (const x of [t, slow]) {
      expect(x.recorded).toEqual([]);
      expect(x.metrics).toEqual(["abandoned"]);
    }
  });
});
