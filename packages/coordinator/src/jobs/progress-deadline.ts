import type { MeasuredSpeed } from "./speed-metrics.js";

/**
 * How long a node that has taken a job may stay silent before the job is taken back and moved on, as a lost node's
 * would be. Pure: the caller passes the instants and the node's measured speed. Why these shapes and defaults is in
 * `../scheduler/design.md` ("Progress deadlines").
 */
export interface ProgressLimits {
  /** The least time allowed from accept to the first part, whatever was measured (`--first-token-timeout`). */
  firstPartFloorMs: number;
  /** The least time allowed between two parts once tokens flow (`--stall-timeout`). */
  stallFloorMs: number;
  /** A measured node gets this many times its own expected time before it is judged stalled. */
  slack: number;
  /** The slowest prefill (prompt tokens a second) an admitted node may have: the first-part allowance for long prompts. */
  slowestPrefillTokensPerSecond: number;
}

export const DEFAULT_PROGRESS_LIMITS: Readonly<ProgressLimits> = Object.freeze({
  firstPartFloorMs: 30_000,
  stallFloorMs: 15_000,
  slack: 8,
  slowestPrefillTokensPerSecond: 50,
});

/**
 * The instant by which the first part must arrive after `acceptedAt`: the floor; or `slack` times the node's measured
 * solo time to first token, times the jobs it is running (they share its compute); or the prompt at the slowest
 * admissible prefill rate, times the same load; whichever is longest.
 */
export function firstPartDeadline(
  acceptedAt: number,
  input: { measured: Pick<MeasuredSpeed, "ttftMs"> | undefined; promptTokens: number; load: number },
  limits: ProgressLimits,
): number {
  const load = Math.max(1, input.load);
  const measured = input.measured ? limits.slack * input.measured.ttftMs * load : 0;
  return acceptedAt + Math.max(limits.firstPartFloorMs, measured, prefillAllowanceMs(input.promptTokens, limits) * load);
}

/**
 * The time a prompt may take to prefill on the slowest admissible node. A node that starts a job pauses its other
 * streams for about that long (llama.cpp runs a newcomer's whole prefill in one batch), so their deadlines move too.
 */
export function prefillAllowanceMs(promptTokens: number, limits: ProgressLimits): number {
  return (promptTokens / limits.slowestPrefillTokensPerSecond) * 1000;
}

/** The instant by which the next part must follow one that arrived at `lastPartAt`. */
export function nextPartDeadline(
  lastPartAt: number,
  input: { measured: Pick<MeasuredSpeed, "tokensPerSecond"> | undefined; load: number },
  limits: ProgressLimits,
): number {
  const tps = input.measured?.tokensPerSecond ?? 0;
  const measured = tps > 0 ? (limits.slack * 1000 * Math.max(1, input.load)) / tps : 0;
  return lastPartAt + Math.max(limits.stallFloorMs, measured);
}
