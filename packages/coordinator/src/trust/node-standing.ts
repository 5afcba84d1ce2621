import type { NodeTier } from "@tessera/protocol";
import type { Clock } from "../clock.js";
import type { Logger } from "../logger.js";
import type { NodeStandingRecord, OperatorStandingRecord, Store } from "../store/types.js";
import { OutcomeWindow } from "./completion-tier.js";
import { type CooldownState, NO_COOLDOWN, afterOffence, isCoolingDown } from "./cooldown.js";
import { CHECK_RATES, nodeTier } from "./node-tier.js";
import { type SpeedSample, speedFactors } from "./speed-factor.js";
import { PRIOR_LOG_ODDS, QUARANTINE_P_CHEAT, afterCheck, probabilityOf, verificationFactor } from "./verification-factor.js";

/**
 * How one node segment of a job ended for the node that ran it. `completed`: the job finished on it. The rest are
 * offences (a cooldown, a `0` in the completion window): `failed` (it reported an error), `timed_out` (it did not
 * accept in time, or still held the job at the job timeout), `stalled` (it accepted and went silent past its
 * progress deadline), `lost` (its session dropped or it stopped heartbeating while holding the job). A node that
 * declines a job (`job.reject`, or a busy error before any work), a client that cancels and a coordinator shutting
 * down are nobody's offence and are not recorded.
 */
export type NodeOutcome = "completed" | "failed" | "timed_out" | "stalled" | "lost";
export type Offence = Exclude<NodeOutcome, "completed">;

/** What the reputation needs of a check's verdict; the check verdict carries more. */
export interface CheckResult {
  passed: boolean;
}

/** One judgment of a node by one replica, which every other replica applies too (bus/replica-link.ts). */
export type StandingJudgment = { nodeId: string; kind: "outcome"; outcome: NodeOutcome } | { nodeId: string; kind: "check"; passed: boolean };

export type StandingStorePort = Pick<Store, "saveNodeStanding" | "addOperatorCompletedJobs">;

export interface NodeStandingDeps {
  clock: Clock;
  store: StandingStorePort;
  logger: Logger;
  /** The operator a node counts under (its own id without a delegation). */
  operatorOf(nodeId: string): string;
  /** Every measured (node, model) speed with the node's hardware class (speed-samples.ts). */
  speedSamples(): Iterable<SpeedSample>;
  /** A cooldown started (metrics). */
  onCooldown?(offence: Offence): void;
  /** This coordinator quarantined or released a node (the other replicas follow over the bus). */
  onQuarantineChange?(nodeId: string, quarantined: boolean): void;
  /** This coordinator judged a node: a job segment's outcome or a check's verdict (the other replicas apply it too). */
  onJudged?(judgment: StandingJudgment): void;
  /** How long a change waits before it is written, gathering the changes after it (STANDING_WRITE_DELAY_MS by default). */
  writeDelayMs?: number;
}

/** A node's standing, for the API and the CLI. */
export interface StandingView {
  operatorId: string;
  tier: NodeTier;
  score: number;
  completion: number;
  speed: number;
  verification: number;
  pCheat: number;
  checksPassed: number;
  checksFailed: number;
  quarantined: boolean;
  /** Epoch ms, while a cooldown runs. */
  cooldownUntil: number | undefined;
  /** The probability that a delivered job of this node is checked. */
  checkRate: number;
}

/**
 * How long a node's changed standing, or an operator's completed jobs, wait before they are written: the changes that
 * come meanwhile go in the same write. Nothing reads the stored standing on the job path (it is what a restarted or
 * another replica starts from; quarantines travel at once over the bus), so 100 ms costs nothing, and it makes a
 * write carry every job of that time at any load, where writing at once carried one job a write on a quiet replica.
 */
export const STANDING_WRITE_DELAY_MS = 100;

/** Speed factors are recomputed at most this often: they move with EWMAs over many jobs, not per job. */
export const SPEED_REFRESH_MS = 30_000;

interface NodeState {
  operatorId: string;
  window: OutcomeWindow;
  /** `window.factor()`, kept so routing reads a number instead of working out an interval per node per decision. */
  completion: number;
  cheatLogOdds: number;
  verification: number;
  checksPassed: number;
  checksFailed: number;
  cooldown: CooldownState;
  quarantinedAt: number | null;
  writing: boolean;
  dirty: boolean;
}

const PRIOR_VERIFICATION = verificationFactor(PRIOR_LOG_ODDS);

/**
 * Every node's standing: reputation (completion × speed × verification), tier, cooldown and quarantine, fed by the
 * job manager (`recordOutcome`) and by checks (`recordCheck`), read by routing on every decision (so the reads are a
 * map lookup and a multiplication) and by `GET /api/v1/nodes/:id`. Memory is the live copy; each change is written
 * through to the store, in order per node, so a restart keeps it (see design.md, "Reputation").
 */
export class NodeStanding {
  private readonly nodes = new Map<string, NodeState>();
  private readonly operatorJobs = new Map<string, number>();
  private speed = new Map<string, number>();
  private speedAt = Number.NEGATIVE_INFINITY;
  private readonly writes = new Set<Promise<void>>();
  /** Per operator: whether its count is being written, and the completed jobs not yet in any write. */
  private readonly operatorWrites = new Map<string, { writing: boolean; unwritten: number }>();

  constructor(private readonly deps: NodeStandingDeps) {}

  /** Loads what the store kept (after a restart). */
  restore(nodes: readonly NodeStandingRecord[], operators: readonly OperatorStandingRecord[]): void {
    for (const o of operators) this.operatorJobs.set(o.operatorId, o.completedJobs);
    for (const r of nodes) {
      const window = OutcomeWindow.parse(r.outcomes);
      this.nodes.set(r.nodeId, {
        operatorId: r.operatorId,
        window,
        completion: window.factor(),
        cheatLogOdds: r.cheatLogOdds,
        verification: verificationFactor(r.cheatLogOdds),
        checksPassed: r.checksPassed,
        checksFailed: r.checksFailed,
        cooldown: { until: r.cooldownUntil?.getTime() ?? null, streak: r.offenceStreak, lastOffenceAt: r.lastOffenceAt?.getTime() ?? null },
        quarantinedAt: r.quarantinedAt?.getTime() ?? null,
        writing: false,
        dirty: false,
      });
    }
  }

  /** One node segment of a job ended (see `NodeOutcome`). */
  recordOutcome(nodeId: string, outcome: NodeOutcome): void {
    this.applyOutcome(nodeId, outcome, true);
    this.deps.onJudged?.({ nodeId, kind: "outcome", outcome });
  }

  /**
   * Another replica judged a node (bus/replica-link.ts): the tallies here follow, so every replica routes by the same
   * standing. That replica wrote the record; this writes nothing and says nothing back.
   */
  applyJudgment(judgment: StandingJudgment): void {
    if (judgment.kind === "outcome") this.applyOutcome(judgment.nodeId, judgment.outcome, false);
    else this.applyCheck(judgment.nodeId, judgment.passed, false);
  }

  /** `own`: judged here, so written to the store and counted in this replica's metrics. */
  private applyOutcome(nodeId: string, outcome: NodeOutcome, own: boolean): void {
    const now = this.deps.clock.now();
    const state = this.stateOf(nodeId);
    state.window.push(outcome === "completed");
    state.completion = state.window.factor();
    if (outcome === "completed") {
      this.operatorJobs.set(state.operatorId, (this.operatorJobs.get(state.operatorId) ?? 0) + 1);
      if (own) this.storeCompletedJob(state.operatorId);
    } else {
      const next = afterOffence(state.cooldown, now);
      state.cooldown = next.state;
      if (next.started && own) {
        this.deps.logger.info({ node: short(nodeId), offence: outcome, until: new Date(next.state.until!).toISOString(), streak: next.state.streak }, "node cooling down");
        this.deps.onCooldown?.(outcome);
      }
    }
    if (own) this.save(nodeId, state);
  }

  /**
   * A node key rotated to `nextId` (admission.ts): the new key takes over the old key's record whole (checks, P(cheat),
   * cooldown, quarantine, completion window), so a rotation never sheds a bad record. The old key keeps its own copy
   * for its grace period.
   */
  inherit(previousId: string, nextId: string): void {
    const previous = this.nodes.get(previousId);
    if (!previous || previousId === nextId) return;
    const state: NodeState = { ...previous, window: OutcomeWindow.parse(previous.window.toString()), cooldown: { ...previous.cooldown }, writing: false, dirty: false };
    this.nodes.set(nextId, state);
    this.save(nextId, state);
  }

  /**
   * The owner lifts a quarantine (`tessera coordinator nodes release`): the node routes again, its P(cheat) starts over
   * at the prior (so its next checks decide afresh) and its check counts stay as history. False when it was not
   * quarantined.
   */
  release(nodeId: string): boolean {
    const state = this.nodes.get(nodeId);
    if (!state || state.quarantinedAt === null) return false;
    state.quarantinedAt = null;
    state.cheatLogOdds = PRIOR_LOG_ODDS;
    state.verification = verificationFactor(PRIOR_LOG_ODDS);
    this.deps.logger.warn({ node: short(nodeId), operator: short(state.operatorId) }, "node released from quarantine by the owner");
    this.save(nodeId, state);
    this.deps.onQuarantineChange?.(nodeId, false);
    return true;
  }

  /**
   * Another replica quarantined or released the node (bus/replica-link.ts): routing here follows at once. That replica
   * judged and wrote the record; this only changes what routing here reads, and says nothing back.
   */
  applyQuarantine(nodeId: string, quarantined: boolean): void {
    const state = this.stateOf(nodeId);
    if (quarantined === (state.quarantinedAt !== null)) return;
    state.quarantinedAt = quarantined ? this.deps.clock.now() : null;
    if (!quarantined) {
      state.cheatLogOdds = PRIOR_LOG_ODDS;
      state.verification = verificationFactor(PRIOR_LOG_ODDS);
    }
    this.deps.logger.warn({ node: short(nodeId), operator: short(state.operatorId) }, quarantined ? "node quarantined by another replica" : "node released from quarantine on another replica");
  }

  /** A reference check of one of the node's delivered jobs came back. */
  recordCheck(nodeId: string, result: CheckResult): void {
    this.applyCheck(nodeId, result.passed, true);
    this.deps.onJudged?.({ nodeId, kind: "check", passed: result.passed });
  }

  /**
   * `own`: judged here, so written to the store, and a quarantine it causes is announced. Applied from another
   * replica, the same verdict quarantines here too (every replica reaches the same tallies), silently: the judging
   * replica announces it.
   */
  private applyCheck(nodeId: string, passed: boolean, own: boolean): void {
    const now = this.deps.clock.now();
    const state = this.stateOf(nodeId);
    if (passed) state.checksPassed++;
    else state.checksFailed++;
    state.cheatLogOdds = afterCheck(state.cheatLogOdds, passed);
    state.verification = verificationFactor(state.cheatLogOdds);
    const pCheat = probabilityOf(state.cheatLogOdds);
    if (state.quarantinedAt === null && pCheat > QUARANTINE_P_CHEAT) {
      // Sticky: a quarantined node gets no jobs, so no checks could clear it; lifting it is a person's decision.
      state.quarantinedAt = now;
      this.deps.logger.warn({ node: short(nodeId), operator: short(state.operatorId), p_cheat: pCheat, failed_checks: state.checksFailed }, "node quarantined");
      if (own) this.deps.onQuarantineChange?.(nodeId, true);
    }
    if (own) this.save(nodeId, state);
  }

  /**
   * The score routing divides a node's cost by: completion × speed × verification. Reads the speed factors as last
   * refreshed (`refreshSpeed`, on the coordinator's tick): recomputing them takes milliseconds on a large network, which
   * must not land inside a routing decision.
   */
  reputation(nodeId: string): number {
    const state = this.nodes.get(nodeId);
    const speed = this.speed.get(nodeId) ?? 1;
    return state ? state.completion * speed * state.verification : speed * PRIOR_VERIFICATION;
  }

  /** No jobs go to it (the scheduler's `quarantined` filter). */
  isQuarantined(nodeId: string): boolean {
    return (this.nodes.get(nodeId)?.quarantinedAt ?? null) !== null;
  }

  /** Whether what the node has earned is held: the payment issue pays nothing out while this is true. */
  earningsHeld(nodeId: string): boolean {
    return this.isQuarantined(nodeId);
  }

  /** Ranked after every other candidate (cooldown.ts says why it is not an exclusion). */
  isCoolingDown(nodeId: string, now: number): boolean {
    const state = this.nodes.get(nodeId);
    return state !== undefined && isCoolingDown(state.cooldown, now);
  }

  tier(nodeId: string): NodeTier {
    const state = this.nodes.get(nodeId);
    const operatorId = state?.operatorId ?? this.deps.operatorOf(nodeId);
    return nodeTier({
      pCheat: probabilityOf(state?.cheatLogOdds ?? PRIOR_LOG_ODDS),
      checksPassed: state?.checksPassed ?? 0,
      operatorCompletedJobs: this.operatorJobs.get(operatorId) ?? 0,
    });
  }

  /** The probability that a delivered job of this node is checked (its tier's rate). */
  checkRate(nodeId: string): number {
    return CHECK_RATES[this.tier(nodeId)];
  }

  view(nodeId: string, now: number): StandingView {
    const state = this.nodes.get(nodeId);
    const cheatLogOdds = state?.cheatLogOdds ?? PRIOR_LOG_ODDS;
    const completion = state?.completion ?? 1;
    const speed = this.speedFactor(nodeId, now);
    const verification = verificationFactor(cheatLogOdds);
    const tier = this.tier(nodeId);
    return {
      operatorId: state?.operatorId ?? this.deps.operatorOf(nodeId),
      tier,
      score: completion * speed * verification,
      completion,
      speed,
      verification,
      pCheat: probabilityOf(cheatLogOdds),
      checksPassed: state?.checksPassed ?? 0,
      checksFailed: state?.checksFailed ?? 0,
      quarantined: (state?.quarantinedAt ?? null) !== null,
      cooldownUntil: state && isCoolingDown(state.cooldown, now) ? state.cooldown.until! : undefined,
      checkRate: CHECK_RATES[tier],
    };
  }

  /** How many of `nodeIds` are in each tier, and how many are quarantined (the metrics' gauges). */
  tally(nodeIds: Iterable<string>): { tiers: Record<NodeTier, number>; quarantined: number } {
    const tiers: Record<NodeTier, number> = { probation: 0, normal: 0, trusted: 0, suspect: 0 };
    let quarantined = 0;
    for (const id of nodeIds) {
      tiers[this.tier(id)]++;
      if (this.isQuarantined(id)) quarantined++;
    }
    return { tiers, quarantined };
  }

  /** Resolves once every write started so far (and any it led to) has landed. */
  async settled(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  /** Recomputes the speed factors when the last computation is `SPEED_REFRESH_MS` old (about 4 ms for 2,000 nodes). */
  refreshSpeed(now: number): void {
    if (now - this.speedAt >= SPEED_REFRESH_MS || now < this.speedAt) {
      this.speed = speedFactors(this.deps.speedSamples());
      this.speedAt = now;
    }
  }

  private speedFactor(nodeId: string, now: number): number {
    this.refreshSpeed(now);
    return this.speed.get(nodeId) ?? 1;
  }

  private stateOf(nodeId: string): NodeState {
    let state = this.nodes.get(nodeId);
    if (!state) {
      const window = new OutcomeWindow();
      state = {
        operatorId: this.deps.operatorOf(nodeId),
        window,
        completion: window.factor(),
        cheatLogOdds: PRIOR_LOG_ODDS,
        verification: PRIOR_VERIFICATION,
        checksPassed: 0,
        checksFailed: 0,
        cooldown: NO_COOLDOWN,
        quarantinedAt: null,
        writing: false,
        dirty: false,
      };
      this.nodes.set(nodeId, state);
    } else {
      // A node may have registered under an operator since its standing was made (a delegation added).
      state.operatorId = this.deps.operatorOf(nodeId);
    }
    return state;
  }

  /**
   * Writes the node's state after the write delay; a change made while a write waits or is in flight goes in that
   * write or the one after it, so writes land in order.
   */
  private save(nodeId: string, state: NodeState): void {
    state.dirty = true;
    if (state.writing) return;
    state.writing = true;
    const write = this.afterWriteDelay()
      .then(() => {
        state.dirty = false;
        return this.deps.store.saveNodeStanding(this.recordOf(nodeId, state));
      })
      .then(
        () => undefined,
        (err: unknown) => this.deps.logger.error({ err, node: short(nodeId) }, "could not store a node's standing"),
      );
    this.track(
      write.then(() => {
        state.writing = false;
        if (state.dirty) this.save(nodeId, state);
      }),
    );
  }

  /**
   * Adds one completed job to the operator's stored count after the write delay: the jobs that complete while that
   * write waits or is in flight go in it or the next one together (each job counted once, the writes in order).
   */
  private storeCompletedJob(operatorId: string): void {
    let entry = this.operatorWrites.get(operatorId);
    if (!entry) this.operatorWrites.set(operatorId, (entry = { writing: false, unwritten: 0 }));
    entry.unwritten++;
    if (!entry.writing) this.writeCompletedJobs(operatorId, entry);
  }

  private writeCompletedJobs(operatorId: string, entry: { writing: boolean; unwritten: number }): void {
    entry.writing = true;
    let count = 0;
    const write = this.afterWriteDelay()
      .then(() => {
        count = entry.unwritten;
        entry.unwritten = 0;
        return this.deps.store.addOperatorCompletedJobs(operatorId, count, new Date(this.deps.clock.now()));
      })
      .then(
        () => undefined,
        (err: unknown) => this.deps.logger.error({ err, operator: short(operatorId), jobs: count }, "could not store an operator's completed jobs"),
      );
    this.track(
      write.then(() => {
        entry.writing = false;
        if (entry.unwritten > 0) this.writeCompletedJobs(operatorId, entry);
        else this.operatorWrites.delete(operatorId);
      }),
    );
  }

  private afterWriteDelay(): Promise<void> {
    const ms = this.deps.writeDelayMs ?? STANDING_WRITE_DELAY_MS;
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  private recordOf(nodeId: string, s: NodeState): NodeStandingRecord {
    return {
      nodeId,
      operatorId: s.operatorId,
      outcomes: s.window.toString(),
      cheatLogOdds: s.cheatLogOdds,
      checksPassed: s.checksPassed,
      checksFailed: s.checksFailed,
      cooldownUntil: s.cooldown.until === null ? null : new Date(s.cooldown.until),
      offenceStreak: s.cooldown.streak,
      lastOffenceAt: s.cooldown.lastOffenceAt === null ? null : new Date(s.cooldown.lastOffenceAt),
      quarantinedAt: s.quarantinedAt === null ? null : new Date(s.quarantinedAt),
      updatedAt: new Date(this.deps.clock.now()),
    };
  }

  private track(p: Promise<void>): void {
    this.writes.add(p);
    void p.then(() => this.writes.delete(p));
  }
}

function short(id: string): string {
  return id.slice(0, 12);
}
