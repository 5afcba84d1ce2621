/**
 * How far one engine's logits (or hidden states) are from another's: the largest |got - want| over the largest
 * |want|. The measure the stage runtimes' agreement tests and benches state their tolerances in: a wrong kernel,
 * position or cache row is off by the order of the values themselves; rounding differences by far less.
 */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new RangeError(`relativeError: ${got.length} values against ${want.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  // NaN anywhere makes the comparisons above false: a NaN value must not pass as agreement.
  for (let i = 0; i < got.length; i++) if (Number.isNaN(got[i]!) || Number.isNaN(want[i]!)) return Number.NaN;
  if (scale === 0) throw new RangeError("relativeError: the reference is all zeros, which says nothing");
  return diff / scale;
}
