import { describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF, type PolicySettings, type PolicyState, drained, initialState, step } from "./policy.js";
import type { IdleSample } from "./probes/probe.js";

const settings: PolicySettings = {
  enlistAfterMs: 90_000,
  inputIdleThresholdMs: 5_000,
  gpuUtilFloor: 0.05,
  pauseOnBattery: true,
  unknownMeansIdle: true,
  ...DEFAULT_BACKOFF,
};

const S = 1000;
/** A desktop whose owner last touched it `idle` ms ago, no other GPU use, on mains. */
const desk = (idle: number, extra: Partial<IdleSample> = {}): IdleSample => ({ inputIdleMs: idle, otherGpuUtil: 0, onBattery: false, ...extra });

/** Runs samples one per second from `start`, returning every state and action. */
function run(state: PolicyState, samples: Array<[number, IdleSample]>, s = settings) {
  const log: Array<{ at: number; name: string; action: string | undefined; reason: string }> = [];
  for (const [at, sample] of samples) {
    const r = step(state, { now: at, sample }, s);
    state = r.action?.type === "drain" ? drained(r.state, at, "") : r.state;
    log.push({ at, name: state.name, action: r.action?.type, reason: r.state.reason });
  }
  return { state, log };
}

describe("idle policy: enlisting", () => {
  it.each([
    ["owner left 89 s ago: still waiting", 89 * S, "waiting", undefined],
    ["owner left 90 s ago: enlists", 90 * S, "enrolled", "enlist"],
    ["owner left 10 min ago when the daemon starts: enlists at once", 600 * S, "enrolled", "enlist"],
    ["owner typed 2 s ago: waiting", 2 * S, "waiting", undefined],
  ])("%s", (_, idle, name, action) => {
    const r = step(initialState(0), { now: 1_000_000, sample: desk(idle) }, settings);
    expect(r.state.name).toBe(name);
    expect(r.action?.type).toBe(action);
  });

  it("a server whose probes cannot tell anything enlists at once (unknown_means_idle = true)", () => {
    const r = step(initialState(0), { now: 5, sample: {} }, settings);
    expect(r.action).toEqual({ type: "enlist" });
    expect(r.state.reason).toMatch(/no input device/);
  });

  it("with unknown_means_idle = false, a machine whose input cannot be read never enlists, and says why", () => {
    const r = step(initialState(0), { now: 5, sample: {} }, { ...settings, unknownMeansIdle: false });
    expect(r.state.name).toBe("waiting");
    expect(r.state.reason).toMatch(/cannot be read/);
  });

  it("enlists after 90 s of quiet counted on the injected clock (the owner left at t=0)", () => {
    const samples: Array<[number, IdleSample]> = [];
    for (let t = 0; t <= 95; t++) samples.push([t * S, desk(t * S)]);
    const { log } = run(initialState(0), samples);
    expect(log.find((l) => l.action === "enlist")?.at).toBe(90 * S);
  });
});

describe("idle policy: draining on use", () => {
  const enrolled = () => step(initialState(0), { now: 100 * S, sample: desk(100 * S) }, settings).state;

  it.each([
    ["keyboard or mouse input", desk(300), /input 0.3 s ago/, "owner_active"],
    ["another process using the GPU above the floor", desk(600 * S, { otherGpuUtil: 0.4 }), /another process uses the GPU \(40 %\)/, "gpu_in_use"],
    ["the machine going on battery", desk(600 * S, { onBattery: true }), /on battery/, "on_battery"],
  ])("drains on %s, and is away once drained", (_, sample, reason, code) => {
    const r = step(enrolled(), { now: 200 * S, sample }, settings);
    // The code is what the coordinator is told (protocol drain-reason.ts); the words stay on the machine.
    expect(r.action).toEqual({ type: "drain", reason: expect.stringMatching(reason), code });
    expect(r.state.name).toBe("draining");
    expect(drained(r.state, 201 * S, "model released").name).toBe("away");
    expect(drained(r.state, 201 * S, "model released").reason).toMatch(reason);
  });

  it.each([
    ["GPU use at the floor (5 %)", desk(600 * S, { otherGpuUtil: 0.05 })],
    ["battery with pause_on_battery = false", desk(600 * S, { onBattery: true })],
    ["input 6 s ago (threshold 5 s)", desk(6 * S)],
  ])("stays enrolled on %s", (name, sample) => {
    const s = name.includes("pause_on_battery") ? { ...settings, pauseOnBattery: false } : settings;
    const r = step(enrolled(), { now: 200 * S, sample }, s);
    expect(r.action).toBeUndefined();
    expect(r.state.name).toBe("enrolled");
  });
});

describe("idle policy: hysteresis and back-off", () => {
  it("after a drain, waits enlist_after again from the last activity, whatever the input probe says", () => {
    // Enrolled, owner types at t=100, leaves; the GPU probe keeps other use at 0 and input idle grows from t=100.
    const samples: Array<[number, IdleSample]> = [[50 * S, desk(600 * S)], [100 * S, desk(0)]];
    for (let t = 101; t <= 200; t++) samples.push([t * S, desk((t - 100) * S)]);
    const { log } = run(initialState(0), samples);
    expect(log[0]!.name).toBe("enrolled");
    expect(log[1]!.name).toBe("away");
    // Input 1-4 s ago is still the owner (threshold 5 s): away until t=105, then waiting.
    expect(log.find((l) => l.name === "waiting")?.at).toBe(105 * S);
    expect(log.filter((l) => l.action === "enlist").map((l) => l.at)).toEqual([50 * S, 190 * S]);
  });

  it("GPU use by others: busy above the floor, quiet only below half of it (no flapping around the floor)", () => {
    const gpu = (u: number) => desk(10_000 * S, { otherGpuUtil: u });
    const samples: Array<[number, IdleSample]> = [[0, gpu(0)], [1 * S, gpu(0.06)]];
    // Hovers at 3-4 % (under the floor, above half of it) for 200 s: still busy, never re-enlists.
    for (let t = 2; t <= 200; t++) samples.push([t * S, gpu(t % 2 ? 0.03 : 0.04)]);
    const hovering = run(initialState(0), samples);
    expect(hovering.log.filter((l) => l.action).map((l) => l.action)).toEqual(["enlist", "drain"]);
    expect(hovering.state.name).toBe("away");
    // Below 2.5 % it is quiet: waiting, then enrolled 90 s after the last busy sample.
    const after: Array<[number, IdleSample]> = [];
    for (let t = 201; t <= 300; t++) after.push([t * S, gpu(0.02)]);
    const quiet = run(hovering.state, after);
    expect(quiet.log[0]!.name).toBe("waiting");
    expect(quiet.log.find((l) => l.action === "enlist")?.at).toBe(290 * S);
  });

  it("after 3 drains within an hour, backs off 5 minutes from the third, then enlists", () => {
    let state = initialState(0);
    const enlists: number[] = [];
    const drains: number[] = [];
    // The owner touches the machine at t = 200, 400 and 600 s; otherwise leaves it alone until t = 1200 s.
    const touches = new Set([200, 400, 600]);
    let lastTouch = -1_000;
    for (let t = 0; t <= 1200; t++) {
      if (touches.has(t)) lastTouch = t;
      const r = step(state, { now: t * S, sample: desk((t - lastTouch) * S) }, settings);
      state = r.action?.type === "drain" ? drained(r.state, t * S, "") : r.state;
      if (r.action?.type === "enlist") enlists.push(t);
      if (r.action?.type === "drain") drains.push(t);
    }
    expect(drains).toEqual([200, 400, 600]);
    // 90 s after each touch, except the third: 5 minutes after it.
    expect(enlists).toEqual([0, 290, 490, 900]);
  });

  it("drains older than an hour do not count towards the back-off", () => {
    let state = initialState(0);
    const enlists: number[] = [];
    const touches = new Set([100, 2000, 3800]);
    let lastTouch = -1_000;
    for (let t = 0; t <= 4000; t++) {
      if (touches.has(t)) lastTouch = t;
      const r = step(state, { now: t * S, sample: desk((t - lastTouch) * S) }, settings);
      state = r.action?.type === "drain" ? drained(r.state, t * S, "") : r.state;
      if (r.action?.type === "enlist") enlists.push(t);
    }
    expect(enlists).toEqual([0, 190, 2090, 3890]);
  });
});
