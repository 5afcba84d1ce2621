/** Smoothing used for every per-node measurement, so all writers agree. α = 0.2: the last ~5 samples dominate. */
export const EWMA_ALPHA = 0.2;

/** Exponentially weighted moving average; the first sample is taken as is. */
export function ewma(previous: number | undefined, sample: number, alpha: number = EWMA_ALPHA): number {
  if (!Number.isFinite(sample)) throw new RangeError(`ewma sample must be finite, got ${sample}`);
  if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`ewma alpha must be in (0, 1], got ${alpha}`);
  return previous === undefined ? sample : previous + alpha * (sample - previous);
}
