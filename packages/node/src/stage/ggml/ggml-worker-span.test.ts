/**
 * The ggml span in its worker thread, as the daemon runs it (correctness against the WebAssembly runtime, batched
 * against one-by-one: ggml-stage.test.ts, which runs every test on both the in-thread and the worker span). Here:
 * the caller's event loop keeps turning while a long forward computes (a timer set after the call fires before its
 * answer, where the in-thread span makes it wait); calls made without waiting run in the order made, a drop too; a
 * span that cannot load rejects with the load's own error; a worker that dies fails its calls with a clear
 * internal_error and harms nothing else; close() ends the thread, and a process that used a span exits on its own,
 * closed or not.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TesseraError } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { loadGgmlStage } from "./ggml-stage.js";
import { GgmlWorkerSpan } from "./ggml-worker-span.js";

let dir: string;
let path: string;
/** Wide and long enough that a 1024-row forward takes a while (tens of ms here). */
let longPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ggml-worker-span-"));
  path = (await makeTinyModel({ path: join(dir, "tiny.gguf"), weightType: "f16", vocab: "bytes", seed: 9, blockCount: 2 })).path;
  longPath = (await makeTinyModel({
    path: join(dir, "long.gguf"), weightType: "f16", vocab: "bytes", seed: 9, blockCount: 4, embeddingLength: 256, feedForwardLength: 512, contextLength: 2048,
  })).path;
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const positions = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const tokens = (n: number): number[] => Array.from({ length: n }, (_, i) => (i * 37 + 11) % 256);

/** What happened first: the answer of `forward()` or a 0 ms timer set right after calling it. */
async function race(forward: () => Float32Array | Promise<Float32Array>): Promise<{ order: string[]; turns: number }> {
  const order: string[] = [];
  let turns = 0;
  let done = false;
  const spin = (): void => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  const answered = Promise.resolve(forward()).then(() => {
    order.push("forward");
    done = true;
  });
  const timer = new Promise<void>((resolve) => setTimeout(() => {
    order.push("timer");
    resolve();
  }, 0));
  setImmediate(spin);
  await Promise.all([answered, timer]);
  done = true;
  return { order, turns };
}

describe("a ggml span in its worker thread", () => {
  it("leaves the event loop free while a long forward computes, where the in-thread span holds it", async () => {
    const span = await GgmlWorkerSpan.load({ path: longPath, start: 0, end: 4 });
    const inThread = loadGgmlStage({ path: longPath, start: 0, end: 4 });
    try {
      const n = 1024;
      const worker = await race(() => span.forward("long", tokens(n), positions(0, n), { logits: "all" }));
      expect(worker.order).toEqual(["timer", "forward"]);
      expect(worker.turns).toBeGreaterThan(1);
      const blocking = await race(() => inThread.forward("long", tokens(n), positions(0, n), { logits: "all" }));
      expect(blocking.order).toEqual(["forward", "timer"]);
      expect(span.cachedTokens("long")).toBe(n);
    } finally {
      inThread.close();
      await span.close();
    }
  }, 60_000);

  it("runs calls made without waiting in the order made, drops included, with the answers of calls made one at a time", async () => {
    const span = await GgmlWorkerSpan.load({ path, start: 0, end: 2 });
    try {
      const prompt = tokens(12);
      const want: Float32Array[] = [(await span.forward("seq", prompt, positions(0, 12))).slice()];
      for (let i = 0; i < 4; i++) want.push((await span.forward("seq", [40 + i], [12 + i])).slice());
      // The same calls, all made at once. The next call starts before an answer's reader runs, so the worker may
      // write the next output while the reader waits: this one waits 200 ms, and must still read its own answer.
      const got: Float32Array[] = [];
      const busyFor = (ms: number) => {
        for (const until = performance.now() + ms; performance.now() < until; );
      };
      const calls = [span.forward("par", prompt, positions(0, 12)).then((a) => (busyFor(200), got.push(a.slice())))];
      for (let i = 0; i < 4; i++) calls.push(span.forward("par", [40 + i], [12 + i]).then((a) => got.push(a.slice())));
      // A drop made now takes effect after the calls before it: the request then starts afresh.
      expect(span.dropRequest("par")).toBe(true);
      calls.push(span.forward("par", [1], [0]).then((a) => got.push(a.slice())));
      await Promise.all(calls);
      expect(got.slice(0, 5)).toEqual(want);
      expect(span.cachedTokens("par")).toBe(1);
      expect(span.dropRequest("nobody")).toBe(false);
      expect(span.activeRequests).toBe(2);
    } finally {
      await span.close();
    }
  });

  it("sends the worker a drop for a request whose only call failed there", async () => {
    const span = await GgmlWorkerSpan.load({ path, start: 0, end: 2 });
    try {
      const worker = (span as unknown as { worker: Worker }).worker;
      const posted: unknown[] = [];
      const post = worker.postMessage.bind(worker);
      worker.postMessage = (m: unknown) => (posted.push(m), post(m));
      // Stage 0 takes token ids: the worker's stage refuses hidden states.
      await expect(span.forward("failed", new Float32Array(64), [0])).rejects.toMatchObject({ code: "bad_request" });
      expect(span.activeRequests).toBe(0);
      expect(span.dropRequest("failed")).toBe(true);
      await span.forward("after", [1], [0]);
      expect(posted).toContainEqual({ type: "drop", requestId: "failed" });
    } finally {
      await span.close();
    }
  });

  it("rejects a load that fails with the load's own error", async () => {
    await expect(GgmlWorkerSpan.load({ path, start: 1, end: 1 })).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/layer range \[1, 1\)/) });
    await expect(GgmlWorkerSpan.load({ path: join(dir, "missing.gguf"), start: 0, end: 1 })).rejects.toBeInstanceOf(TesseraError);
  });

  it("fails the call in flight and every later one with internal_error when its worker dies; the process carries on", async () => {
    const span = await GgmlWorkerSpan.load({ path: longPath, start: 0, end: 4 });
    const inFlight = span.forward("r", tokens(1024), positions(0, 1024), { logits: "all" });
    const caught = inFlight.catch((err: unknown) => err);
    await (span as unknown as { worker: Worker }).worker.terminate();
    const err = (await caught) as TesseraError;
    expect(err).toBeInstanceOf(TesseraError);
    expect(err.code).toBe("internal_error");
    expect(err.message).toMatch(/^the ggml span of layers \[0, 4\): its worker ended \(exit code 1\)$/);
    await expect(span.forward("r", [1], [0])).rejects.toMatchObject({ code: "internal_error", message: err.message });
    await span.close();
    // Another span loads and computes as before.
    const next = await GgmlWorkerSpan.load({ path, start: 0, end: 2 });
    expect((await next.forward("r", [1], [0])).length).toBe(next.vocabSize);
    await next.close();
  }, 60_000);

  it("ends its thread on close(); calls after it fail", async () => {
    const span = await GgmlWorkerSpan.load({ path, start: 0, end: 2 });
    await span.forward("r", [1, 2], [0, 1]);
    await span.close();
    expect(await span.exited).toBe(0);
    await expect(span.forward("r", [3], [2])).rejects.toMatchObject({ code: "internal_error", message: expect.stringMatching(/used after close\(\)/) });
    await span.close();
  });

  it("lets the step in flight finish before close() frees the span, however long the step takes", async () => {
    const warnings: string[] = [];
    const span = await GgmlWorkerSpan.load({ path: longPath, start: 0, end: 4, closeTimeoutMs: 50, warn: (m) => warnings.push(m) });
    const started = performance.now();
    const inFlight = span.forward("r", tokens(2048), positions(0, 2048), { logits: "all" });
    await new Promise((resolve) => setImmediate(resolve)); // the step is posted to the worker
    const queued = span.forward("r", [1], [2048]);
    const queuedFailed = queued.catch((err: unknown) => err);
    const closed = span.close();
    // The step takes longer than the close timeout; it still answers, and the worker then frees the span and ends.
    expect((await inFlight).length).toBe(2048 * span.vocabSize);
    expect(performance.now() - started).toBeGreaterThan(50);
    expect(await queuedFailed).toMatchObject({ code: "internal_error", message: expect.stringMatching(/used after close\(\)/) });
    await closed;
    expect(await span.exited).toBe(0);
    expect(warnings).toEqual([]);
  }, 60_000);

  it("warns when close() must terminate a worker that did not free the span in time", async () => {
    const warnings: string[] = [];
    const span = await GgmlWorkerSpan.load({ path, start: 0, end: 2, closeTimeoutMs: 0, warn: (m) => warnings.push(m) });
    await span.forward("r", [1, 2], [0, 1]);
    await span.close();
    expect(warnings).toEqual([expect.stringMatching(/^the ggml span of layers \[0, 2\): its worker did not free the span and end within 0 ms of close\(\), so it was terminated; its native memory .* stays allocated$/)]);
  });

  it.each([["closes it", "close"], ["leaves it open", "open"]])("a process that loads a span, computes and %s exits on its own", (_what, mode) => {
    const script = join(import.meta.dirname, "ggml-worker-exit.fixture.ts");
    const run = spawnSync(process.execPath, ["--conditions=tessera-source", "--import", "tsx", script, path, mode], { encoding: "utf8", timeout: 60_000 });
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.signal).toBeNull();
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe(`computed ${mode}`);
  }, 90_000);
});
