import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTIVATION_FLAG_SAMPLED, decodeActivationFrame, encodeActivationFrame, setActivationFrameSampling, type StageNodeMessage } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import type { NodeLogger } from "../logger.js";
import { Sampler, largestMagnitude } from "../stage/sampler.js";
import { setStageThreads, wasmArena } from "../stage/wasm-matvec.js";
import { loadStage } from "../stage/stage.js";
import { StageHost } from "./stage-host.js";

/**
 * The last stage samples for the coordinator: the tokens of a two-stage pipeline driven through the host's binary
 * frames, with the PRNG state carried frame to frame, must be the tokens the one-stage runtime's `Sampler` picks
 * from the whole model's logits with the same seed, so moving sampling onto the node changes no output.
 */
const LAYERS = 3;
let dir: string;
let path: string;
const quiet = { info() {}, warn() {}, debug() {}, error() {} } as unknown as NodeLogger;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tessera-stage-host-"));
  path = join(dir, "tiny.gguf");
  await makeTinyModel({ path, seed: 7, vocab: "bytes", blockCount: LAYERS });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function hostWithTwoStages(logger: NodeLogger = quiet, backend?: "wasm" | "ggml-cpu"): Promise<StageHost> {
  const host = await StageHost.create({ modelPath: path, logger, backend });
  const replies: StageNodeMessage[] = [];
  await host.onMessage({ type: "stage.load", stage_id: 1, sha256: host.file.sha256, start: 0, end: 1 }, (m) => replies.push(JSON.parse(m)));
  await host.onMessage({ type: "stage.load", stage_id: 2, sha256: host.file.sha256, start: 1, end: LAYERS }, (m) => replies.push(JSON.parse(m)));
  expect(replies.map((r) => r.type)).toEqual(["stage.loaded", "stage.loaded"]);
  return host;
}

/** Runs `steps` tokens through stage 1 → stage 2 as the coordinator does; returns the tokens and the frames fed to stage 2. */
async function generate(host: StageHost, prompt: number[], steps: number, temperature: number, topP: number, seed: number) {
  const sampling = { temperature, topP, rngState: seed };
  const tokens: number[] = [];
  const logits: { tokenLogit: number; logitScale: number }[] = [];
  const fedToLast: Uint8Array[] = [];
  let input = Int32Array.from(prompt);
  let pos = Int32Array.from(prompt, (_, i) => i);
  for (let seq = 0; seq < steps; seq++) {
    let out: Uint8Array | undefined;
    const frame = encodeActivationFrame({ requestId: "req", stageId: 1, seq, rows: input.length, cols: 1, positions: pos, dtype: "i32", data: input });
    await host.onBinary(frame, (b) => (out = b), (t) => expect.unreachable(t));
    const hidden = Uint8Array.from(out!);
    new DataView(hidden.buffer).setUint32(8, 2, true);
    setActivationFrameSampling(hidden, sampling);
    fedToLast.push(hidden);
    await host.onBinary(hidden, (b) => (out = b), (t) => expect.unreachable(t));
    const answer = decodeActivationFrame(out!);
    expect(answer.flags & ACTIVATION_FLAG_SAMPLED).toBeTruthy();
    expect(answer.nodeUs).toBeGreaterThanOrEqual(answer.computeUs);
    sampling.rngState = answer.rngState;
    const token = answer.data[0]!;
    tokens.push(token);
    logits.push({ tokenLogit: answer.tokenLogit, logitScale: answer.logitScale });
    input = Int32Array.of(token);
    pos = Int32Array.of(prompt.length + seq);
  }
  return { tokens, logits, fedToLast };
}

/** The one-stage reference: the whole model's logits, the runtime's Sampler seeded once. */
function reference(prompt: number[], steps: number, temperature: number, topP: number, seed: number): number[] {
  const stage = loadStage({ path, start: 0, end: LAYERS });
  const sampler = new Sampler({ temperature, topP, seed });
  const out: number[] = [];
  let input = Int32Array.from(prompt);
  let pos = Int32Array.from(prompt, (_, i) => i);
  for (let i = 0; i < steps; i++) {
    const token = sampler.sample(stage.forward("ref", input, pos));
    out.push(token);
    input = Int32Array.of(token);
    pos = Int32Array.of(prompt.length + i);
  }
  return out;
}

describe("sampling on the last stage", () => {
  const prompt = [1, 72, 101, 108, 108, 111];

  it("picks the one-stage runtime's tokens, greedy and seeded temperature/top-p", async () => {
    for (const [temperature, topP, seed] of [[0, 1, 0], [0.9, 0.95, 42], [1.3, 1, 7]] as const) {
      const host = await hostWithTwoStages();
      expect((await generate(host, prompt, 16, temperature, topP, seed)).tokens).toEqual(reference(prompt, 16, temperature, topP, seed));
      await host.close();
    }
  }, 60_000);

  it("with backend ggml-cpu runs its spans on ggml's CPU backend, logs so, and picks the same greedy tokens", async () => {
    const lines: string[] = [];
    const logger = { ...quiet, info: (m: string) => lines.push(m) } as unknown as NodeLogger;
    const host = await hostWithTwoStages(logger, "ggml-cpu");
    // The runtime and its build with the span's layers, once per span.
    expect(lines.filter((l) => /^stage [12]: layers \[\d+, \d+\) of \S+ loaded in \d+ ms \([\d.]+ ms\/layer, [\d.]+ MiB\/layer allocated\) on ggml-cpu \(libggml-cpu\S*, @node-llama-cpp\/\S+ [\d.]+, ggml v\S+, from \/\S+; in a worker thread, 1 thread\(s\)\)$/.test(l))).toHaveLength(2);
    expect((await generate(host, prompt, 16, 0, 1, 0)).tokens).toEqual(reference(prompt, 16, 0, 1, 0));
    await host.close();
    const wasmLines: string[] = [];
    const wasm = await hostWithTwoStages({ ...quiet, info: (m: string) => wasmLines.push(m) } as unknown as NodeLogger);
    expect(wasmLines.filter((l) => / on wasm \(/.test(l))).toHaveLength(2);
    await wasm.close();
  }, 60_000);

  it("answers each token with its logit and the row's largest |logit|, as the one-stage runtime computes them", async () => {
    const host = await hostWithTwoStages();
    const { tokens, logits } = await generate(host, prompt, 6, 0.9, 0.95, 42);
    await host.close();
    const stage = loadStage({ path, start: 0, end: LAYERS });
    let input = Int32Array.from(prompt);
    let pos = Int32Array.from(prompt, (_, i) => i);
    tokens.forEach((token, i) => {
      const row = stage.forward("ref", input, pos);
      // Bit for bit: the runtime is deterministic, and f32 → f64 on the wire is exact.
      expect(logits[i]).toEqual({ tokenLogit: row[token], logitScale: largestMagnitude(row) });
      input = Int32Array.of(token);
      pos = Int32Array.of(prompt.length + i);
    });
    expect(largestMagnitude(Float32Array.of(-3, 2, 1))).toBe(3);
    for (const garbage of [Float32Array.of(Number.NaN, -3, 2), Float32Array.of(-3, Number.NaN, 2)]) expect(largestMagnitude(garbage)).toBeNaN();
  }, 60_000);

  it("needs no per-request sampling state: a replica replaying the saved inputs samples the same tokens", async () => {
    const first = await hostWithTwoStages();
    const { tokens, fedToLast } = await generate(first, prompt, 10, 0.9, 0.9, 1234);
    await first.close();
    const replica = await hostWithTwoStages();
    const replayed: number[] = [];
    for (const f of fedToLast) {
      let out: Uint8Array | undefined;
      await replica.onBinary(f, (b) => (out = b), (t) => expect.unreachable(t));
      replayed.push(decodeActivationFrame(out!).data[0]!);
    }
    expect(replayed).toEqual(tokens);
    await replica.close();
  }, 60_000);
});

describe("threads", () => {
  it("a host created with threads: 2 runs the runtime's products on 2 threads; bad counts are refused", async () => {
    try {
      const host = await StageHost.create({ modelPath: path, logger: quiet, threads: 2 });
      expect(wasmArena()!.threads).toBe(2);
      await host.close();
      await expect(StageHost.create({ modelPath: path, logger: quiet, threads: 0 })).rejects.toThrow(/stage threads must be a whole number from 1 to 256/);
    } finally {
      setStageThreads(1);
    }
  });
});

describe("a middle stage", () => {
  it("answers in place, over the frame it received, and the chain still gives the one-stage runtime's tokens", async () => {
    const host = await StageHost.create({ modelPath: path, logger: quiet });
    for (const [id, start, end] of [[1, 0, 1], [2, 1, 2], [3, 2, LAYERS]] as const) {
      await host.onMessage({ type: "stage.load", stage_id: id, sha256: host.file.sha256, start, end }, () => {});
    }
    const prompt = [1, 72, 101, 108, 108, 111];
    const tokens: number[] = [];
    let input = Int32Array.from(prompt);
    let pos = Int32Array.from(prompt, (_, i) => i);
    for (let seq = 0; seq < 8; seq++) {
      let out: Uint8Array | undefined;
      await host.onBinary(encodeActivationFrame({ requestId: "mid", stageId: 1, seq, rows: input.length, cols: 1, positions: pos, dtype: "i32", data: input }), (b) => (out = b), (t) => expect.unreachable(t));
      const toMiddle = Uint8Array.from(out!);
      new DataView(toMiddle.buffer).setUint32(8, 2, true);
      await host.onBinary(toMiddle, (b) => (out = b), (t) => expect.unreachable(t));
      expect(out).toBe(toMiddle);
      const answer = decodeActivationFrame(out!);
      expect(answer).toMatchObject({ requestId: "mid", seq, rows: input.length, dtype: "f32" });
      expect(answer.nodeUs).toBeGreaterThanOrEqual(answer.computeUs);
      const toLast = Uint8Array.from(out!);
      new DataView(toLast.buffer).setUint32(8, 3, true);
      setActivationFrameSampling(toLast, { temperature: 0, topP: 1, rngState: 0 });
      await host.onBinary(toLast, (b) => (out = b), (t) => expect.unreachable(t));
      const token = decodeActivationFrame(out!).data[0]!;
      tokens.push(token);
      input = Int32Array.of(token);
      pos = Int32Array.of(prompt.length + seq);
    }
    expect(tokens).toEqual(reference(prompt, 8, 0, 1, 0));
  });
});

describe("a stage check's replay", () => {
  const prompt = [1, 72, 101, 108, 108, 111];

  /** Feeds `frames` to the host under `requestId` (re-encoded, as the coordinator's replay does); returns the answers. */
  async function feed(host: StageHost, frames: Uint8Array[], requestId: string): Promise<Uint8Array[]> {
    const answers: Uint8Array[] = [];
    for (const f of frames) {
      const d = decodeActivationFrame(f);
      let out: Uint8Array | undefined;
      await host.onBinary(encodeActivationFrame({ ...d, requestId }), (b) => (out = Uint8Array.from(b)), (t) => expect.unreachable(t));
      answers.push(out!);
    }
    return answers;
  }

  it("runs the span on the given inputs under its own request id and leaves a live request's state untouched", async () => {
    // The undisturbed run: the tokens a live request samples, and the frames its last stage was fed.
    const plain = await hostWithTwoStages();
    const { tokens, fedToLast } = await generate(plain, prompt, 8, 0.8, 0.9, 99);
    await plain.close();
    // The same request on another host, interrupted after its 4th step by a replay of the last stage's first 3 inputs.
    const host = await hostWithTwoStages();
    const sampling = { temperature: 0.8, topP: 0.9, rngState: 99 };
    const live: number[] = [];
    let input = Int32Array.from(prompt);
    let pos = Int32Array.from(prompt, (_, i) => i);
    for (let seq = 0; seq < 8; seq++) {
      if (seq === 4) {
        const answers = await feed(host, fedToLast.slice(0, 3), "replay-1");
        // The replay's answer to step 2 is what the live request's last stage answered at step 2.
        expect(decodeActivationFrame(answers[2]!)).toMatchObject({ requestId: "replay-1", seq: 2, data: Int32Array.of(tokens[2]!) });
        await host.onMessage({ type: "stage.drop", request_id: "replay-1" }, () => {});
      }
      let out: Uint8Array | undefined;
      await host.onBinary(encodeActivationFrame({ requestId: "req", stageId: 1, seq, rows: input.length, cols: 1, positions: pos, dtype: "i32", data: input }), (b) => (out = b), (t) => expect.unreachable(t));
      const hidden = Uint8Array.from(out!);
      new DataView(hidden.buffer).setUint32(8, 2, true);
      setActivationFrameSampling(hidden, sampling);
      await host.onBinary(hidden, (b) => (out = b), (t) => expect.unreachable(t));
      const answer = decodeActivationFrame(out!);
      sampling.rngState = answer.rngState;
      live.push(answer.data[0]!);
      input = Int32Array.of(answer.data[0]!);
      pos = Int32Array.of(prompt.length + seq);
    }
    expect(live).toEqual(tokens);
    await host.close();
  }, 60_000);

  it("TESSERA_TEST_STAGE_PERTURB's host (tests only) hands on other activations than an honest one", async () => {
    const honest = await StageHost.create({ modelPath: path, logger: quiet });
    const liar = await StageHost.create({ modelPath: path, logger: quiet, perturb: 0.5 });
    const answers: Float32Array[] = [];
    for (const host of [honest, liar]) {
      await host.onMessage({ type: "stage.load", stage_id: 1, sha256: host.file.sha256, start: 0, end: 1 }, () => {});
      let out: Uint8Array | undefined;
      await host.onBinary(encodeActivationFrame({ requestId: "r", stageId: 1, seq: 0, rows: prompt.length, cols: 1, positions: Int32Array.from(prompt, (_, i) => i), dtype: "i32", data: Int32Array.from(prompt) }), (b) => (out = Uint8Array.from(b)), (t) => expect.unreachable(t));
      answers.push(Float32Array.from(decodeActivationFrame(out!).data as Float32Array));
      await host.close();
    }
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < answers[0]!.length; i++) {
      diff += (answers[0]![i]! - answers[1]![i]!) ** 2;
      norm += answers[0]![i]! ** 2;
    }
    expect(Math.sqrt(diff / norm)).toBeGreaterThan(0.1);
  }, 60_000);
});

describe("ggml spans in their worker threads", () => {
  type Held = { stages: Map<number, { exited?: Promise<number>; worker?: import("node:worker_threads").Worker }> };
  const spansOf = (host: StageHost) => (host as unknown as Held).stages;

  it("a span that cannot load is a stage.error, and the host goes on loading and serving", async () => {
    const host = await StageHost.create({ modelPath: path, logger: quiet, backend: "ggml-cpu" });
    const replies: StageNodeMessage[] = [];
    await host.onMessage({ type: "stage.load", stage_id: 7, sha256: host.file.sha256, start: 2, end: 2 }, (m) => replies.push(JSON.parse(m)));
    expect(replies).toEqual([{ type: "stage.error", stage_id: 7, code: "bad_request", message: expect.stringMatching(/layer range \[2, 2\)/) }]);
    await host.onMessage({ type: "stage.load", stage_id: 1, sha256: host.file.sha256, start: 0, end: 1 }, (m) => replies.push(JSON.parse(m)));
    expect(replies[1]).toMatchObject({ type: "stage.loaded", stage_id: 1 });
    await host.close();
  }, 60_000);

  it("a worker that dies answers its frames with stage.error; a reload of the span serves again; close ends every worker", async () => {
    const host = await hostWithTwoStages(quiet, "ggml-cpu");
    const frame = (seq: number) => encodeActivationFrame({ requestId: "x", stageId: 1, seq, rows: 1, cols: 1, positions: Int32Array.of(seq), dtype: "i32", data: Int32Array.of(65) });
    await spansOf(host).get(1)!.worker!.terminate();
    const errors: unknown[] = [];
    await host.onBinary(frame(0), () => expect.unreachable(), (t) => errors.push(JSON.parse(t)));
    expect(errors).toEqual([{ type: "stage.error", stage_id: 1, request_id: "x", code: "internal_error", message: "the ggml span of layers [0, 1): its worker ended (exit code 1)" }]);
    const replies: StageNodeMessage[] = [];
    await host.onMessage({ type: "stage.load", stage_id: 1, sha256: host.file.sha256, start: 0, end: 1 }, (m) => replies.push(JSON.parse(m)));
    expect(replies[0]).toMatchObject({ type: "stage.loaded", stage_id: 1 });
    let out: Uint8Array | undefined;
    await host.onBinary(frame(0), (b) => (out = b), (t) => expect.unreachable(t));
    expect(decodeActivationFrame(out!)).toMatchObject({ requestId: "x", stageId: 1, rows: 1, dtype: "f32" });
    const exits = [...spansOf(host).values()].map((s) => s.exited!);
    await host.close();
    expect(await Promise.all(exits)).toEqual([0, 0]);
  }, 60_000);

  it("answers a ping-like timer while a frame of many rows computes, and frames and drops keep their order", async () => {
    const host = await hostWithTwoStages(quiet, "ggml-cpu");
    const n = 400;
    const rows = Int32Array.from({ length: n }, (_, i) => (i * 7) % 256);
    const order: string[] = [];
    const long = host.onBinary(
      encodeActivationFrame({ requestId: "long", stageId: 1, seq: 0, rows: n, cols: 1, positions: Int32Array.from(rows, (_, i) => i), dtype: "i32", data: rows }),
      () => order.push("frame"),
      (t) => expect.unreachable(t),
    );
    // Queued behind the frame: the drop applies after it, so the request holds nothing afterwards.
    const drop = host.onMessage({ type: "stage.drop", request_id: "long" }, () => {});
    await new Promise<void>((resolve) => setTimeout(() => (order.push("timer"), resolve()), 0));
    await Promise.all([long, drop]);
    expect(order).toEqual(["timer", "frame"]);
    expect([...spansOf(host).values()].map((s) => (s as unknown as { cachedTokens(id: string): number }).cachedTokens("long"))).toEqual([0, 0]);
    await host.close();
  }, 60_000);
});

describe("the offer", () => {
  it("says what a layer takes in the file and on this node's backend, and the per-layer time measured there", async () => {
    for (const backend of ["wasm", "ggml-cpu"] as const) {
      const host = await StageHost.create({ modelPath: path, logger: quiet, backend });
      const offer = host.offer();
      expect(offer.type).toBe("stage.offer");
      const shard = (offer as Extract<StageNodeMessage, { type: "stage.offer" }>).shards[0]!;
      expect(shard.bytes_per_layer).toBe(host.file.bytesPerLayer);
      // The backend's layer holds at least the file's bytes, plus a full-context cache.
      expect(shard.span_bytes_per_layer).toBeGreaterThan(shard.bytes_per_layer);
      expect(shard.ms_per_layer).toBeGreaterThan(0);
      await host.close();
    }
  }, 60_000);

  it("leaves the time out when asked not to probe, and both figures when the backend cannot run here", async () => {
    const unprobed = await StageHost.create({ modelPath: path, logger: quiet, probeSpeed: false });
    const shard = (unprobed.offer() as Extract<StageNodeMessage, { type: "stage.offer" }>).shards[0]!;
    expect(shard.span_bytes_per_layer).toBeGreaterThan(0);
    expect(shard.ms_per_layer).toBeUndefined();
    const warnings: string[] = [];
    const logger = { ...quiet, warn: (line: string) => void warnings.push(line) } as unknown as NodeLogger;
    const noGpu = await StageHost.create({ modelPath: path, logger, backend: "metal" });
    const none = (noGpu.offer() as Extract<StageNodeMessage, { type: "stage.offer" }>).shards[0]!;
    expect(none).not.toHaveProperty("span_bytes_per_layer");
    expect(none).not.toHaveProperty("ms_per_layer");
    expect(warnings).toEqual([expect.stringMatching(/stage backend metal cannot run here: .*; the offer says nothing of this node's backend/)]);
  }, 60_000);
});
