import type { LayerRange } from "./types.js";

/** Collapses a sorted list of layer indices into half-open ranges: [3,4,5,9] → [3,6), [9,10). */
export function indicesToRanges(indices: readonly number[]): LayerRange[] {
  const ranges: LayerRange[] = [];
  for (const i of indices) {
    const last = ranges[ranges.length - 1];
    if (last && last.end === i) last.end = i + 1;
    else ranges.push({ start: i, end: i + 1 });
  }
  return ranges;
}

/** "layers 3–5, 9" (inclusive, human numbering as the layer index). */
export function describeRanges(ranges: readonly LayerRange[]): string {
  const parts = ranges.map((r) => (r.end - r.start === 1 ? `${r.start}` : `${r.start}–${r.end - 1}`));
  return `layer${ranges.length === 1 && ranges[0]!.end - ranges[0]!.start === 1 ? "" : "s"} ${parts.join(", ")}`;
}
