/**
 * Routing cooldowns after a node fails or times out on a job (design.md, "Reputation"). A cooldown is a routing
 * penalty, not an exclusion: the scheduler ranks a cooling node after every other candidate, so it gets work only
 * when no other node could take the job now. On a one-node network (`tessera up`, a home lab) exclusion would turn one
 * failed job into an hour in which every job fails; ranked last, the lone node keeps serving, and wherever a healthy
 * node is free the cooling one gets nothing.
 */

export const FIRST_COOLDOWN_MS = 60 * 60 * 1000;
/** An offence within this long of the previous one is a repeat and doubles the cooldown. */
export const REPEAT_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;
/** No cooldown is longer than the repeat window (reached at the 8th offence in a row). */
export const MAX_COOLDOWN_MS = REPEAT_WINDOW_MS;

export interface CooldownState {
  /** End of the current cooldown (epoch ms); null when the node never had one. */
  until: number | null;
  /** Offences in the current run of repeats (each within `REPEAT_WINDOW_MS` of the one before). */
  streak: number;
  lastOffenceAt: number | null;
}

export const NO_COOLDOWN: Readonly<CooldownState> = Object.freeze({ until: null, streak: 0, lastOffenceAt: null });

export function isCoolingDown(state: CooldownState, now: number): boolean {
  return state.until !== null && now < state.until;
}

/**
 * The state after an offence at `now`, and whether it started a cooldown. An offence during a cooldown is part of the
 * same incident (a dropped session fails every job the node held at once; a cooling node used as the last resort
 * fails again) and changes nothing: escalation is for a node that comes back and fails again.
 */
export function afterOffence(state: CooldownState, now: number): { state: CooldownState; started: boolean } {
  if (isCoolingDown(state, now)) return { state, started: false };
  const repeat = state.lastOffenceAt !== null && now - state.lastOffenceAt <= REPEAT_WINDOW_MS;
  const streak = repeat ? state.streak + 1 : 1;
  const duration = Math.min(MAX_COOLDOWN_MS, FIRST_COOLDOWN_MS * 2 ** Math.min(streak - 1, 30));
  return { state: { until: now + duration, streak, lastOffenceAt: now }, started: true };
}
