import { ACTIVATION_FLAG_SAMPLED, TesseraError, type DecodedActivationFrame } from "@tessera/protocol";

/**
 * The verdict of one stage check (design.md, "Checking one stage"): what a stage handed on for one step, against
 * what a reference holding the same span computed from the same saved inputs. Pure.
 *
 * - A span that hands on hidden states is judged by the relative error of its **contribution**: per row,
 *   ‖claimed − replayed‖ / ‖replayed − input‖ (the input is the residual stream the span added to; the first span,
 *   whose input is token ids, divides by ‖replayed‖). The largest over the step's rows must not exceed
 *   `STAGE_CHECK_TOLERANCE`. Dividing by the contribution, not by the output, keeps a span of one or two layers on a
 *   large residual stream from hiding its work under the input it passed through.
 * - The last span hands on a sampled token, the advanced PRNG state and the token's logit: the token and the state must
 *   equal the reference's, and the logit may differ from the reference's by at most `LAST_SPAN_LOGIT_TOLERANCE` of
 *   the reference row's largest |logit|. The logit is what catches a quantised last span, whose token is usually the
 *   honest one.
 */

/**
 * Largest allowed relative error of a span's contribution. Calibrated by `npm run bench -- stage-checks`
 * (design.md, "Checking one stage: calibration"): honest stage runtimes agree bit for bit (0 in 1 000 replays); a
 * different engine's numerics (llama.cpp against the stage runtime, F16 activations) stay below 9e-4, and their fitted
 * tail reaches a per-check false-positive rate of 1e-4 at 9.2e-4; 0.02 leaves 20x that for unmeasured engines (GPUs)
 * and sits 6x below the smallest lie measured (Q4_K_M weights claimed as F16: 0.127; other weights, a skipped layer,
 * garbage, a pass-through: 0.4 and up).
 */
export const STAGE_CHECK_TOLERANCE = 0.02;

/**
 * Largest allowed error of the last span's sampled-token logit, relative to the reference row's largest |logit|.
 * Calibrated by `npm run bench -- stage-checks` (design.md, "Checking one stage: calibration"): honest stage runtimes
 * agree bit for bit; a different engine (llama.cpp, F16 activations) stays below 4e-4, with a fitted tail reaching a
 * per-check false-positive rate of 1e-4 at ~5e-4; 0.002 leaves 4x that and catches most steps of a Q4_K_M last span
 * that picked the honest token.
 */
export const LAST_SPAN_LOGIT_TOLERANCE = 0.002;

export interface StageCheckInput {
  /** The frame the checked stage was fed for the sampled step (token ids for the first span, else hidden states). */
  input: DecodedActivationFrame;
  /** What the checked stage handed on for that step. */
  claimed: DecodedActivationFrame;
  /** The reference's answer to the replayed step. */
  replayed: DecodedActivationFrame;
}

export interface StageVerdict {
  passed: boolean;
  /** Why it failed, in words (empty when it passed). */
  failures: string[];
  /**
   * Hidden-state spans: the largest relative error of the contribution over the step's rows. The last span: the
   * sampled token's logit error relative to the reference row's scale (absent when the tokens differ).
   */
  relativeError?: number;
}

/**
 * Judges a stage's answer for one step against the reference's. Throws `bad_request` when the reference's answer
 * cannot be compared (wrong shape, wrong kind, non-finite values): that says something about the reference, nothing
 * about the checked node, and the caller abandons the check without charging anyone.
 */
export function stageVerdict({ input, claimed, replayed }: StageCheckInput, tolerance = STAGE_CHECK_TOLERANCE, logitTolerance = LAST_SPAN_LOGIT_TOLERANCE): StageVerdict {
  if (replayed.seq !== claimed.seq) throw new TesseraError("bad_request", `replay answer: step ${replayed.seq}, expected ${claimed.seq}`);
  const sampled = (claimed.flags & ACTIVATION_FLAG_SAMPLED) !== 0;
  if (sampled) {
    if (!(replayed.flags & ACTIVATION_FLAG_SAMPLED) || replayed.dtype !== "i32" || replayed.rows !== 1) {
      throw new TesseraError("bad_request", `replay answer: expected one sampled token, got ${replayed.rows} x ${replayed.cols} ${replayed.dtype}`);
    }
    if (!Number.isFinite(replayed.tokenLogit) || !(replayed.logitScale > 0 && Number.isFinite(replayed.logitScale))) {
      throw new TesseraError("bad_request", `replay answer: the sampled token's logit ${replayed.tokenLogit} or the row's scale ${replayed.logitScale} is not usable`);
    }
    const failures: string[] = [];
    if (claimed.rngState !== replayed.rngState) failures.push(`PRNG state ${claimed.rngState}, the reference ${replayed.rngState}`);
    if (claimed.data[0] !== replayed.data[0]) {
      failures.push(`sampled token ${claimed.data[0]}, the reference ${replayed.data[0]}`);
      return { passed: false, failures };
    }
    // A NaN or an infinity claimed is garbage: the error is infinite, not NaN.
    const error = Number.isFinite(claimed.tokenLogit) ? Math.abs(claimed.tokenLogit - replayed.tokenLogit) / replayed.logitScale : Number.POSITIVE_INFINITY;
    if (error > logitTolerance) failures.push(`the sampled token's logit ${claimed.tokenLogit}, the reference ${replayed.tokenLogit}: ${error.toPrecision(3)} of the row's scale > ${logitTolerance}`);
    return { passed: failures.length === 0, failures, relativeError: error };
  }
  if (replayed.flags & ACTIVATION_FLAG_SAMPLED || replayed.dtype === "i32") throw new TesseraError("bad_request", "replay answer: a token where hidden states were expected");
  if (replayed.rows !== input.rows) throw new TesseraError("bad_request", `replay answer: ${replayed.rows} rows, expected ${input.rows}`);
  const cols = replayed.cols;
  const residual = input.dtype !== "i32";
  if (residual && input.cols !== cols) throw new TesseraError("bad_request", `replay answer: ${cols} values a row, the span's input has ${input.cols}`);
  for (let i = 0; i < replayed.data.length; i++) {
    if (!Number.isFinite(replayed.data[i]!)) throw new TesseraError("bad_request", `replay answer: a non-finite value at ${i}`);
  }
  if (claimed.dtype === "i32" || claimed.rows !== replayed.rows || claimed.cols !== cols) {
    return { passed: false, failures: [`handed on ${claimed.rows} x ${claimed.cols} ${claimed.dtype}, the reference ${replayed.rows} x ${cols} ${replayed.dtype}`] };
  }
  let worst = 0;
  for (let r = 0; r < replayed.rows; r++) {
    let diff = 0;
    let own = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const ref = replayed.data[i]!;
      const d = claimed.data[i]! - ref;
      diff += d * d;
      const contribution = residual ? ref - input.data[i]! : ref;
      own += contribution * contribution;
    }
    // A NaN or an infinity in what the stage handed on is garbage: the error is infinite, not NaN.
    const error = Number.isFinite(diff) ? Math.sqrt(diff) / Math.max(Math.sqrt(own), 1e-30) : Number.POSITIVE_INFINITY;
    if (!(error <= worst)) worst = error;
  }
  const passed = worst <= tolerance;
  return { passed, failures: passed ? [] : [`relative error of the span's contribution ${worst.toPrecision(3)} > ${tolerance}`], relativeError: worst };
}
