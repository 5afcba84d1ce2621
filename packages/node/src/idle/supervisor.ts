import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { DrainReason } from "@tessera/protocol";
import type { NodeLogger } from "../logger.js";
import type { Clock } from "../session-client.js";
import { type PolicySettings, type PolicyState, drained, initialState, step } from "./policy.js";
import type { IdleProbe, IdleSample } from "./probes/probe.js";

export { IDLE_STATE_FILE_NAME } from "./idle-settings.js";

/** What the daemon does when the policy decides (daemon.ts implements it). */
export interface IdleEffects {
  /** Take work again: load the model, un-drain, tell the coordinator. */
  enlist(): Promise<void>;
  /**
   * Step aside: announce draining (with `code`, the reason the coordinator is told), hand in-flight jobs back after
   * the grace, free the memory. Returns a summary.
   */
  drain(reason: string, code: DrainReason): Promise<string>;
}

/** What `tessera status --node` reads (`<data>/idle-state.json`). */
export interface IdleStatusFile {
  state: PolicyState["name"];
  reason: string;
  since: string;
  updated_at: string;
  pid: number;
  last_sample: IdleSample | undefined;
  drains_last_hour: number;
}

export interface IdleSupervisorOptions {
  probe: IdleProbe;
  settings: PolicySettings;
  pollIntervalMs: number;
  clock: Clock;
  effects: IdleEffects;
  logger: NodeLogger;
  /** Where the state is written for `tessera status --node`; none: not written. */
  statusFile?: string;
  pid?: number;
}

/**
 * Polls the probe, steps the pure policy, runs its actions one at a time (no poll while one runs), logs each
 * transition with its reason and writes the state file.
 */
export class IdleSupervisor {
  private current: PolicyState;
  private timer: unknown;
  private stopped = false;
  private lastSample: IdleSample | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly o: IdleSupervisorOptions) {
    this.current = initialState(o.clock.now());
  }

  get state(): PolicyState {
    return this.current;
  }

  /** Polls now, then every `pollIntervalMs`. */
  start(): void {
    this.write();
    void this.poll();
  }

  /** Stops polling; waits for an action in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.polling;
    this.o.probe.close?.();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => void this.poll(), this.o.pollIntervalMs);
  }

  private poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => {
      this.polling = undefined;
      this.schedule();
    });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    if (this.stopped) return;
    const sample = await this.o.probe.sample().catch((err: unknown) => {
      this.o.logger.warn(`idle probe failed (${err instanceof Error ? err.message : String(err)}); counting it as cannot tell`);
      return {} as IdleSample;
    });
    this.lastSample = sample;
    const before = this.current;
    const { state, action } = step(before, { now: this.o.clock.now(), sample }, this.o.settings);
    this.set(state, before);
    if (this.stopped || !action) return;
    if (action.type === "enlist") {
      try {
        await this.o.effects.enlist();
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        this.o.logger.warn(`idle: enlisting failed (${why}); waiting again`);
        this.set({ ...this.current, name: "waiting", reason: `enlisting failed: ${why}`, since: this.o.clock.now(), lastActiveAt: this.o.clock.now() }, this.current);
      }
    } else {
      let detail: string;
      try {
        detail = await this.o.effects.drain(action.reason, action.code);
      } catch (err) {
        detail = `drain incomplete: ${err instanceof Error ? err.message : String(err)}`;
      }
      this.set(drained(this.current, this.o.clock.now(), detail), this.current);
    }
  }

  private set(next: PolicyState, before: PolicyState): void {
    this.current = next;
    if (next.name !== before.name) this.o.logger.info(`idle: ${before.name} → ${next.name}: ${next.reason}`);
    else if (next.reason !== before.reason && !/^waiting: quiet for /.test(next.reason)) this.o.logger.debug(`idle: ${next.name}: ${next.reason}`);
    if (next.name !== before.name || next.reason !== before.reason) this.write();
  }

  private write(): void {
    if (!this.o.statusFile) return;
    const now = this.o.clock.now();
    const body: IdleStatusFile = {
      state: this.current.name,
      reason: this.current.reason,
      since: new Date(this.current.since).toISOString(),
      updated_at: new Date(now).toISOString(),
      pid: this.o.pid ?? process.pid,
      last_sample: this.lastSample,
      drains_last_hour: this.current.drains.filter((t) => now - t < this.o.settings.backoffWindowMs).length,
    };
    try {
      mkdirSync(dirname(this.o.statusFile), { recursive: true, mode: 0o700 });
      const tmp = `${this.o.statusFile}.tmp`;
      writeFileSync(tmp, JSON.stringify(body, null, 2) + "\n", { mode: 0o600 });
      renameSync(tmp, this.o.statusFile);
    } catch (err) {
      this.o.logger.debug({ err }, "could not write the idle state file");
    }
  }
}

