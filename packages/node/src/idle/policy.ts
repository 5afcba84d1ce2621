import type { DrainReason } from "@tessera/protocol";
import type { IdleSample } from "./probes/probe.js";

/**
 * The idle policy as a pure state machine (design.md): data in, data out, clock and probes as inputs.
 *
 *   waiting ──quiet for enlist_after, past any back-off──▶ enrolled ──owner active──▶ draining ──drained──▶ away
 *   away ──owner no longer active──▶ waiting
 */
export type IdleStateName = "waiting" | "enrolled" | "draining" | "away";

export interface PolicySettings {
  enlistAfterMs: number;
  inputIdleThresholdMs: number;
  gpuUtilFloor: number;
  pauseOnBattery: boolean;
  unknownMeansIdle: boolean;
  /** Drains within `backoffWindowMs` that trigger a back-off (3 in an hour). */
  backoffDrains: number;
  backoffWindowMs: number;
  backoffMs: number;
}

export const DEFAULT_BACKOFF = { backoffDrains: 3, backoffWindowMs: 3_600_000, backoffMs: 300_000 } as const;

export interface PolicyState {
  name: IdleStateName;
  /** Why the node is in this state, in words (the log and `tessera status --node`). */
  reason: string;
  /** When this state began (clock ms). */
  since: number;
  /** The last time any activity was seen (clock ms); undefined: never. */
  lastActiveAt: number | undefined;
  /** Other GPU use seen on the last sample (for the hysteresis band). */
  gpuBusy: boolean;
  /** When each recent drain began (clock ms), for the back-off. */
  drains: number[];
  /** No enlisting before this (clock ms). */
  backoffUntil: number;
}

/** A drain says why in words (the log) and as a code (what the coordinator is told: protocol drain-reason.ts). */
export type PolicyAction = { type: "enlist" } | { type: "drain"; reason: string; code: DrainReason } | undefined;

export interface StepResult {
  state: PolicyState;
  action: PolicyAction;
}

export function initialState(now: number): PolicyState {
  return { name: "waiting", reason: "starting: waiting for the machine to be idle", since: now, lastActiveAt: undefined, gpuBusy: false, drains: [], backoffUntil: 0 };
}

/** What makes the owner count as active now, or undefined when the machine is quiet. Updates the GPU band. */
export function activity(
  sample: IdleSample,
  settings: PolicySettings,
  gpuBusyBefore: boolean,
): { reason: string | undefined; code: DrainReason; gpuBusy: boolean; onlyInput: boolean } {
  const reasons: string[] = [];
  /** The first cause found, as the coordinator is told it. */
  let code: DrainReason | undefined;
  if (sample.inputIdleMs !== undefined && sample.inputIdleMs < settings.inputIdleThresholdMs) {
    reasons.push(`input ${(sample.inputIdleMs / 1000).toFixed(1)} s ago`);
    code ??= "owner_active";
  }
  let gpuBusy = false;
  if (sample.otherGpuUtil !== undefined) {
    // Hysteresis: busy above the floor, quiet again only below half of it.
    gpuBusy = gpuBusyBefore ? sample.otherGpuUtil >= settings.gpuUtilFloor / 2 : sample.otherGpuUtil > settings.gpuUtilFloor;
    if (gpuBusy) {
      reasons.push(`another process uses the GPU (${Math.round(sample.otherGpuUtil * 100)} %)`);
      code ??= "gpu_in_use";
    }
  }
  if (settings.pauseOnBattery && sample.onBattery === true) {
    reasons.push("on battery");
    code ??= "on_battery";
  }
  if (!settings.unknownMeansIdle) {
    if (sample.inputIdleMs === undefined) reasons.push("input idle time cannot be read (unknown_means_idle = false)");
  }
  const onlyInput = reasons.length === 1 && reasons[0]!.startsWith("input ");
  return { reason: reasons.length ? reasons.join(", ") : undefined, code: code ?? "unspecified", gpuBusy, onlyInput };
}

/**
 * When the machine became quiet, as far as this sample and the policy's memory tell: the later of the last activity
 * seen and the input probe's own idle time (a desktop idle for 10 minutes when the daemon starts enlists at once;
 * a probe that cannot read input counts as idle for ever).
 */
function quietSince(state: PolicyState, sample: IdleSample, now: number): number {
  const inputSince = sample.inputIdleMs === undefined ? -Infinity : now - sample.inputIdleMs;
  return Math.max(inputSince, state.lastActiveAt ?? -Infinity);
}

function seconds(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 100) / 10} s`;
}

/** One poll: the sample at `now`. */
export function step(state: PolicyState, input: { now: number; sample: IdleSample }, settings: PolicySettings): StepResult {
  const { now, sample } = input;
  const { reason: active, code, gpuBusy, onlyInput } = activity(sample, settings, state.gpuBusy);
  // Input is dated by the probe (the keypress itself); other activity by this sample.
  const activeAt = onlyInput ? now - sample.inputIdleMs! : now;
  const next: PolicyState = { ...state, gpuBusy, lastActiveAt: active ? Math.max(activeAt, state.lastActiveAt ?? -Infinity) : state.lastActiveAt };
  const to = (name: IdleStateName, reason: string): PolicyState => ({ ...next, name, reason, since: now });

  switch (state.name) {
    case "enrolled": {
      if (!active) return { state: next, action: undefined };
      const drains = [...next.drains.filter((t) => now - t < settings.backoffWindowMs), now];
      let backoffUntil = next.backoffUntil;
      let reason = `owner is back: ${active}`;
      if (drains.length >= settings.backoffDrains) {
        backoffUntil = now + settings.backoffMs;
        reason += `; ${drains.length} drains within ${seconds(settings.backoffWindowMs)}: backing off ${seconds(settings.backoffMs)}`;
      }
      return { state: { ...to("draining", reason), drains, backoffUntil }, action: { type: "drain", reason: active, code } };
    }
    case "draining":
      // Only `drained` moves on; activity keeps being remembered meanwhile.
      return { state: next, action: undefined };
    case "away":
      if (active) return { state: next.reason === `away: ${active}` ? next : { ...next, reason: `away: ${active}` }, action: undefined };
      return { state: to("waiting", `owner gone quiet; enlisting after ${seconds(settings.enlistAfterMs)} of quiet`), action: undefined };
    case "waiting": {
      if (active) {
        const reason = `waiting: ${active}`;
        return { state: next.reason === reason ? next : { ...next, reason }, action: undefined };
      }
      const quietFor = now - quietSince(next, sample, now);
      if (quietFor < settings.enlistAfterMs) {
        const reason = `waiting: quiet for ${seconds(Math.max(0, quietFor))} of ${seconds(settings.enlistAfterMs)}`;
        return { state: { ...next, reason }, action: undefined };
      }
      if (now < next.backoffUntil) {
        return { state: { ...next, reason: `backing off until ${seconds(next.backoffUntil - now)} from now (${settings.backoffDrains} drains within ${seconds(settings.backoffWindowMs)})` }, action: undefined };
      }
      const why = quietFor === Infinity ? "machine idle (no input device or activity to read)" : `machine quiet for ${seconds(quietFor)}`;
      return { state: to("enrolled", why), action: { type: "enlist" } };
    }
  }
}

/** The daemon finished draining (jobs handed back, memory freed). */
export function drained(state: PolicyState, now: number, detail: string): PolicyState {
  if (state.name !== "draining") return state;
  return { ...state, name: "away", reason: `away: ${state.reason.replace(/^owner is back: /, "")}${detail ? ` (${detail})` : ""}`, since: now };
}
