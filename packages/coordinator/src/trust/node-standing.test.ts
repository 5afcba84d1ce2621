import { describe, expect, it } from "vitest";
import { ManualClock } from "../clock.js";
import { createLogger } from "../logger.js";
import type { NodeStandingRecord } from "../store/types.js";
import { COMPLETION_WINDOW } from "./completion-tier.js";
import { FIRST_COOLDOWN_MS } from "./cooldown.js";
import { NodeStanding, type NodeStandingDeps, type Offence, SPEED_REFRESH_MS } from "./node-standing.js";
import { PROBATION_JOBS, TRUSTED_MIN_PASSED_CHECKS } from "./node-tier.js";
import type { SpeedSample } from "./speed-factor.js";
import { CHEAT_PRIOR } from "./verification-factor.js";

/** A store that keeps the last record per node and counts operator jobs, as the real one does. */
function fakeStore() {
  const nodes = new Map<string, NodeStandingRecord>();
  const operators = new Map<string, number>();
  let fail = false;
  return {
    nodes,
    operators,
    failWrites(on: boolean) {
      fail = on;
    },
    async saveNodeStanding(r: NodeStandingRecord) {
      await Promise.resolve();
      if (fail) throw new Error("disk full");
      nodes.set(r.nodeId, r);
    },
    operatorWrites: [] as Array<[string, number]>,
    async addOperatorCompletedJobs(operatorId: string, count: number) {
      await Promise.resolve();
      if (fail) throw new Error("disk full");
      this.operatorWrites.push([operatorId, count]);
      const n = (operators.get(operatorId) ?? 0) + count;
      operators.set(operatorId, n);
      return n;
    },
  };
}

function setup(overrides: Partial<NodeStandingDeps> = {}) {
  const clock = new ManualClock(1_000_000_000_000);
  const store = fakeStore();
  const cooldowns: Offence[] = [];
  let samples: SpeedSample[] = [];
  const standing = new NodeStanding({
    clock,
    store,
    logger: createLogger("silent"),
    operatorOf: (id) => (id.startsWith("op1-") ? "op1" : id),
    speedSamples: () => samples,
    onCooldown: (o) => cooldowns.push(o),
    writeDelayMs: 0,
    ...overrides,
  });
  return { clock, store, standing, cooldowns, setSamples: (s: SpeedSample[]) => (samples = s) };
}

describe("NodeStanding", () => {
  it("a node nobody has seen is a probationer with a neutral record", () => {
    const { standing, clock } = setup();
    const view = standing.view("n1", clock.now());
    expect(view).toMatchObject({ operatorId: "n1", tier: "probation", completion: 1, speed: 1, checksPassed: 0, checksFailed: 0, quarantined: false, cooldownUntil: undefined, checkRate: 0.2 });
    expect(view.verification).toBeCloseTo(1 - CHEAT_PRIOR);
    expect(standing.reputation("n1")).toBeCloseTo(1 - CHEAT_PRIOR);
  });

  it("a failed job cools the node down for an hour and lowers its completion factor only as the record supports", () => {
    const { standing, clock, cooldowns } = setup();
    for (let i = 0; i < 9; i++) standing.recordOutcome("n1", "completed");
    standing.recordOutcome("n1", "failed");
    expect(cooldowns).toEqual(["failed"]);
    expect(standing.isCoolingDown("n1", clock.now())).toBe(true);
    expect(standing.view("n1", clock.now())).toMatchObject({ completion: 0.9, cooldownUntil: clock.now() + FIRST_COOLDOWN_MS });
    clock.advance(FIRST_COOLDOWN_MS);
    expect(standing.isCoolingDown("n1", clock.now())).toBe(false);
    expect(standing.view("n1", clock.now()).cooldownUntil).toBeUndefined();
  });

  it("a dropped session failing four jobs at once is one cooldown, and the next offence after it doubles", () => {
    const { standing, clock, cooldowns } = setup();
    for (let i = 0; i < 4; i++) standing.recordOutcome("n1", "lost");
    expect(cooldowns).toEqual(["lost"]);
    clock.advance(FIRST_COOLDOWN_MS + 1);
    standing.recordOutcome("n1", "stalled");
    expect(standing.view("n1", clock.now()).cooldownUntil).toBe(clock.now() + 2 * FIRST_COOLDOWN_MS);
  });

  it("probation belongs to the operator: 200 completed jobs across its nodes end it for all of them", () => {
    const { standing, clock } = setup();
    for (let i = 0; i < PROBATION_JOBS - 1; i++) standing.recordOutcome(i % 2 ? "op1-a" : "op1-b", "completed");
    expect(standing.tier("op1-a")).toBe("probation");
    standing.recordOutcome("op1-b", "completed");
    expect(standing.tier("op1-a")).toBe("normal");
    expect(standing.tier("op1-new")).toBe("normal");
    expect(standing.view("op1-new", clock.now()).checkRate).toBe(0.05);
    expect(standing.tier("solo")).toBe("probation");
  });

  it("checks move P(cheat): one failure makes a node suspect (every job checked), two quarantine it and hold its earnings", () => {
    const { standing, clock } = setup();
    standing.recordCheck("n1", { passed: true });
    expect(standing.tier("n1")).toBe("probation");
    standing.recordCheck("n1", { passed: false });
    expect(standing.view("n1", clock.now())).toMatchObject({ tier: "suspect", checkRate: 1, quarantined: false, checksPassed: 1, checksFailed: 1 });
    expect(standing.earningsHeld("n1")).toBe(false);
    standing.recordCheck("n1", { passed: false });
    const view = standing.view("n1", clock.now());
    expect(view.quarantined).toBe(true);
    expect(view.pCheat).toBeGreaterThan(0.99);
    expect(view.verification).toBeLessThan(0.01);
    expect(standing.isQuarantined("n1")).toBe(true);
    expect(standing.earningsHeld("n1")).toBe(true);
    // Quarantine is sticky: later clean checks lower P(cheat) but do not lift it.
    for (let i = 0; i < 100; i++) standing.recordCheck("n1", { passed: true });
    expect(standing.isQuarantined("n1")).toBe(true);
  });

  it("says when it quarantines or releases a node, and follows another replica's word without saying it back or writing", async () => {
    const changes: string[] = [];
    const { standing, store } = setup({ onQuarantineChange: (nodeId, quarantined) => changes.push(`${nodeId} ${quarantined}`) });
    standing.recordCheck("n1", { passed: false });
    standing.recordCheck("n1", { passed: false });
    standing.recordCheck("n1", { passed: false });
    expect(changes).toEqual(["n1 true"]);
    expect(standing.release("n1")).toBe(true);
    expect(changes).toEqual(["n1 true", "n1 false"]);
    await standing.settled();
    const written = store.nodes.size;

    standing.applyQuarantine("n2", true);
    expect(standing.isQuarantined("n2")).toBe(true);
    standing.applyQuarantine("n2", true);
    standing.applyQuarantine("n2", false);
    expect(standing.isQuarantined("n2")).toBe(false);
    expect(standing.reputation("n2")).toBeCloseTo(1 - CHEAT_PRIOR);
    await standing.settled();
    expect(changes).toEqual(["n1 true", "n1 false"]);
    expect(store.nodes.size).toBe(written);
  });

  it("trust takes the operator's probation and 50 clean checks, and one failed check takes it away for a while", () => {
    const { standing } = setup();
    for (let i = 0; i < PROBATION_JOBS; i++) standing.recordOutcome("n1", "completed");
    for (let i = 0; i < TRUSTED_MIN_PASSED_CHECKS - 1; i++) standing.recordCheck("n1", { passed: true });
    expect(standing.tier("n1")).toBe("normal");
    standing.recordCheck("n1", { passed: true });
    expect(standing.tier("n1")).toBe("trusted");
    expect(standing.checkRate("n1")).toBe(0.02);
    standing.recordCheck("n1", { passed: false });
    expect(standing.tier("n1")).toBe("suspect");
    for (let i = 0; i < 10; i++) standing.recordCheck("n1", { passed: true });
    expect(standing.tier("n1")).toBe("normal");
    for (let i = 0; i < 40; i++) standing.recordCheck("n1", { passed: true });
    expect(standing.tier("n1")).toBe("trusted");
  });

  it("reputation is completion × speed × verification", () => {
    const { standing, clock, setSamples } = setup();
    setSamples([
      { nodeId: "slow", model: "m", hardwareClass: "cpu", tokensPerSecond: 6, jobs: 10 },
      { nodeId: "b", model: "m", hardwareClass: "cpu", tokensPerSecond: 8, jobs: 10 },
      { nodeId: "c", model: "m", hardwareClass: "cpu", tokensPerSecond: 8, jobs: 10 },
    ]);
    for (let i = 0; i < 9; i++) standing.recordOutcome("slow", "completed");
    standing.recordOutcome("slow", "timed_out");
    const v = standing.view("slow", clock.now());
    expect(v.speed).toBeCloseTo(0.75);
    expect(v.completion).toBe(0.9);
    expect(v.score).toBeCloseTo(0.75 * 0.9 * (1 - CHEAT_PRIOR));
    expect(standing.reputation("slow")).toBeCloseTo(v.score);
  });

  it("speed factors are refreshed at most every 30 s", () => {
    const { standing, clock, setSamples } = setup();
    const at = (tps: number): SpeedSample[] => [
      { nodeId: "a", model: "m", hardwareClass: "cpu", tokensPerSecond: tps, jobs: 10 },
      { nodeId: "b", model: "m", hardwareClass: "cpu", tokensPerSecond: 10, jobs: 10 },
      { nodeId: "c", model: "m", hardwareClass: "cpu", tokensPerSecond: 10, jobs: 10 },
    ];
    setSamples(at(10));
    expect(standing.view("a", clock.now()).speed).toBe(1);
    setSamples(at(6));
    clock.advance(SPEED_REFRESH_MS - 1);
    expect(standing.view("a", clock.now()).speed).toBe(1);
    clock.advance(1);
    // Routing reads what the last refresh computed; the coordinator's tick (or a view) refreshes.
    expect(standing.reputation("a")).toBeCloseTo(1 - CHEAT_PRIOR);
    standing.refreshSpeed(clock.now());
    expect(standing.reputation("a")).toBeCloseTo(0.6 * (1 - CHEAT_PRIOR));
    expect(standing.view("a", clock.now()).speed).toBeCloseTo(0.6);
  });

  it("writes every change through in order, and a restart from what was written keeps it all", async () => {
    const first = setup();
    first.standing.recordOutcome("op1-a", "completed");
    first.standing.recordOutcome("op1-a", "failed");
    first.standing.recordCheck("op1-a", { passed: false });
    first.standing.recordCheck("op1-a", { passed: false });
    for (let i = 0; i < 3; i++) first.standing.recordOutcome("op1-b", "completed");
    await first.standing.settled();
    const stored = first.store.nodes.get("op1-a")!;
    expect(stored).toMatchObject({ operatorId: "op1", outcomes: "10", checksFailed: 2, offenceStreak: 1 });
    expect(stored.quarantinedAt).not.toBeNull();

    const second = setup();
    second.clock.advance(10 * 60 * 1000);
    second.standing.restore(
      [...first.store.nodes.values()],
      [...first.store.operators].map(([operatorId, completedJobs]) => ({ operatorId, completedJobs, updatedAt: new Date(0) })),
    );
    const before = first.standing.view("op1-a", first.clock.now());
    const after = second.standing.view("op1-a", second.clock.now());
    expect(after).toMatchObject({ quarantined: true, checksFailed: 2, completion: before.completion, cooldownUntil: before.cooldownUntil });
    expect(after.pCheat).toBeCloseTo(before.pCheat, 12);
    // 4 completed jobs for op1 came back: 196 more end probation.
    for (let i = 0; i < PROBATION_JOBS - 5; i++) second.standing.recordOutcome("op1-b", "completed");
    expect(second.standing.tier("op1-b")).toBe("probation");
    second.standing.recordOutcome("op1-b", "completed");
    expect(second.standing.tier("op1-b")).toBe("normal");
  });

  it("a write that fails is logged and the next change is written again", async () => {
    const { standing, store } = setup();
    store.failWrites(true);
    standing.recordOutcome("n1", "completed");
    await standing.settled();
    expect(store.nodes.has("n1")).toBe(false);
    store.failWrites(false);
    standing.recordOutcome("n1", "completed");
    await standing.settled();
    expect(store.nodes.get("n1")?.outcomes).toBe("11");
  });

  it("the stored window never grows past its size", async () => {
    const { standing, store } = setup();
    for (let i = 0; i < COMPLETION_WINDOW + 20; i++) standing.recordOutcome("n1", "completed");
    await standing.settled();
    expect(store.nodes.get("n1")?.outcomes).toBe("1".repeat(COMPLETION_WINDOW));
  });

  it("tallies tiers and quarantine for the metrics", () => {
    const { standing } = setup();
    standing.recordCheck("bad", { passed: false });
    standing.recordCheck("bad", { passed: false });
    standing.recordCheck("odd", { passed: false });
    expect(standing.tally(["bad", "odd", "new"])).toEqual({ tiers: { probation: 1, normal: 0, trusted: 0, suspect: 2 }, quarantined: 1 });
  });
});

describe("NodeStanding across replicas", () => {
  it("announces each judgment it makes, and applies another replica's without writing or announcing anything", async () => {
    const judged: string[] = [];
    const quarantines: string[] = [];
    const { standing, store, clock, cooldowns } = setup({
      onJudged: (j) => void judged.push(`${j.nodeId} ${j.kind === "outcome" ? j.outcome : j.passed}`),
      onQuarantineChange: (id, q) => void quarantines.push(`${id} ${q}`),
    });
    standing.recordOutcome("n1", "completed");
    standing.recordCheck("n1", { passed: true });
    expect(judged).toEqual(["n1 completed", "n1 true"]);
    await standing.settled();
    const written = store.nodes.get("n1");

    // Another replica's verdicts: the tallies, cooldown and quarantine here follow; nothing is written or announced.
    standing.applyJudgment({ nodeId: "n1", kind: "outcome", outcome: "stalled" });
    for (let i = 0; i < 10; i++) standing.applyJudgment({ nodeId: "n1", kind: "check", passed: false });
    await standing.settled();
    const view = standing.view("n1", clock.now());
    expect(view).toMatchObject({ checksPassed: 1, checksFailed: 10, quarantined: true });
    expect(view.cooldownUntil).toBeGreaterThan(clock.now());
    expect(standing.isQuarantined("n1")).toBe(true);
    expect(judged).toHaveLength(2);
    expect(quarantines).toEqual([]);
    expect(cooldowns).toEqual([]);
    expect(store.nodes.get("n1")).toBe(written);
    expect(store.operators.get("n1")).toBe(1);
  });

  it("writes an operator's completed jobs that arrive while a write waits or is in flight together, each counted once", async () => {
    const { standing, store } = setup({ writeDelayMs: 20 });
    // Ten jobs of two nodes of op1 and one of another operator finish within the write delay: one write each.
    for (let i = 0; i < 10; i++) standing.recordOutcome(i % 2 === 0 ? "op1-a" : "op1-b", "completed");
    standing.recordOutcome("n2", "completed");
    expect(store.operatorWrites).toEqual([]);
    await standing.settled();
    expect(store.operatorWrites).toEqual([
      ["op1", 10],
      ["n2", 1],
    ]);
    // A job that ends while its operator's write waits joins it; one after it lands gets a write of its own.
    standing.recordOutcome("op1-a", "completed");
    await new Promise((resolve) => setTimeout(resolve, 5));
    standing.recordOutcome("op1-b", "completed");
    await standing.settled();
    standing.recordOutcome("op1-a", "completed");
    await standing.settled();
    expect(store.operatorWrites.slice(2)).toEqual([
      ["op1", 2],
      ["op1", 1],
    ]);
    expect(store.operators.get("op1")).toBe(13);
  });

  it("writes a node's standing once for the changes within the write delay, with the last of them", async () => {
    const { standing, store } = setup({ writeDelayMs: 20 });
    const writes: NodeStandingRecord[] = [];
    const save = store.saveNodeStanding.bind(store);
    store.saveNodeStanding = async (r: NodeStandingRecord) => {
      writes.push(r);
      await save(r);
    };
    for (let i = 0; i < 5; i++) standing.recordOutcome("n1", "completed");
    standing.recordOutcome("n1", "failed");
    await standing.settled();
    expect(writes).toHaveLength(1);
    expect(writes[0]).toBe(store.nodes.get("n1"));
    expect(writes[0]!.outcomes).toBe("111110");
  });

  it("logs a failed write of an operator's count and goes on: later jobs are written", async () => {
    const { standing, store } = setup();
    store.failWrites(true);
    standing.recordOutcome("op1-a", "completed");
    await standing.settled();
    store.failWrites(false);
    standing.recordOutcome("op1-a", "completed");
    await standing.settled();
    expect(store.operators.get("op1")).toBe(1);
  });
});
