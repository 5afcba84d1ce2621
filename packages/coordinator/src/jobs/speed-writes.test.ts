import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import { openStore } from "../store/open-store.js";
import type { Store } from "../store/types.js";
import { SpeedMetrics } from "./speed-metrics.js";
import { SpeedWrites } from "./speed-writes.js";

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const node = (n: number) => n.toString(16).padStart(64, "0");

async function sqlite(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), "tessera-speed-writes-"));
  dirs.push(dir);
  const store = await openStore({ sqlitePath: join(dir, "c.db") });
  stores.push(store);
  return store;
}

/** The store, with every recordJobMetrics call counted. */
function counted(store: Store): { store: Store; calls: Array<{ nodeId: string; model: string; samples: number }> } {
  const calls: Array<{ nodeId: string; model: string; samples: number }> = [];
  return {
    calls,
    store: new Proxy(store, {
      get(target, property) {
        if (property !== "recordJobMetrics") return Reflect.get(target, property);
        return (nodeId: string, model: string, samples: unknown[], at: Date) => {
          calls.push({ nodeId, model, samples: samples.length });
          return target.recordJobMetrics(nodeId, model, samples as never, at);
        };
      },
    }),
  };
}

describe("SpeedWrites", () => {
  it("writes a node and model's samples of one delay in one upsert, the stored figures those SpeedMetrics holds", async () => {
    vi.useFakeTimers();
    const real = await sqlite();
    const { store, calls } = counted(real);
    const clock = new ManualClock();
    const writes = new SpeedWrites({ store, clock, logger: createLogger("silent"), delayMs: 1_000 });
    const memory = new SpeedMetrics();
    const samples = [
      [1, "m", { tokensPerSecond: 30, ttftMs: 12 }],
      [1, "m", { tokensPerSecond: 0, ttftMs: 8 }],
      [2, "m", { tokensPerSecond: 50, ttftMs: 4 }],
      [1, "other", { tokensPerSecond: 9, ttftMs: 90 }],
      [1, "m", { tokensPerSecond: 45, ttftMs: 20 }],
    ] as const;
    for (const [n, model, sample] of samples) {
      memory.record(node(n), model, sample);
      writes.add(node(n), model, sample);
      clock.advance(10);
    }
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    await writes.flush();
    expect(calls.sort((a, b) => a.samples - b.samples || a.model.localeCompare(b.model))).toEqual([
      { nodeId: node(2), model: "m", samples: 1 },
      { nodeId: node(1), model: "other", samples: 1 },
      { nodeId: node(1), model: "m", samples: 3 },
    ]);
    for (const stored of await real.listNodeModelMetrics()) {
      const held = memory.get(stored.nodeId, stored.model)!;
      expect(stored.tokensPerSecond).toBeCloseTo(held.tokensPerSecond, 9);
      expect(stored.ttftMs).toBeCloseTo(held.ttftMs, 9);
      expect(stored.samples).toBe(held.jobs);
    }
    // The last sample's time is the row's.
    expect((await real.listNodeModelMetrics({ nodeId: node(1) })).find((m) => m.model === "m")!.updatedAt).toEqual(new Date(clock.now() - 10));
  });

  it("writes what is queued at flush (the coordinator's shutdown) without waiting for the delay, and nothing twice", async () => {
    const real = await sqlite();
    const { store, calls } = counted(real);
    const writes = new SpeedWrites({ store, clock: new ManualClock(), logger: createLogger("silent"), delayMs: 60_000 });
    writes.add(node(1), "m", { tokensPerSecond: 10, ttftMs: 1 });
    writes.add(node(1), "m", { tokensPerSecond: 20, ttftMs: 2 });
    await writes.flush();
    expect(calls).toEqual([{ nodeId: node(1), model: "m", samples: 2 }]);
    await writes.flush();
    expect(calls).toHaveLength(1);
    expect((await real.listNodeModelMetrics())[0]).toMatchObject({ tokensPerSecond: 0.7 * 10 + 0.3 * 20, samples: 2 });
  });

  it("logs a write the store refuses and keeps writing the others", async () => {
    const real = await sqlite();
    const errors: unknown[] = [];
    const logger = createLogger("silent");
    logger.error = ((obj: unknown) => void errors.push(obj)) as typeof logger.error;
    const writes = new SpeedWrites({ store: real, clock: new ManualClock(), logger, delayMs: 60_000 });
    writes.add(node(1), "x".repeat(10_000), { tokensPerSecond: 1, ttftMs: 1 }); // a model name the store refuses
    writes.add(node(1), "m", { tokensPerSecond: 1, ttftMs: 1 });
    await writes.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ node: node(1), samples: 1 });
    expect((await real.listNodeModelMetrics()).map((m) => m.model)).toEqual(["m"]);
  });
});
