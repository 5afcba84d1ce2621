/**
 * Whether this daemon's own work may be what a whole-device GPU reading shows. Apple GPUs report one utilisation for
 * the whole device (ioreg `Device Utilization %`, no per-process split), so while the embedded engine generates on
 * Metal that figure is ours, and counting it as "another process uses the GPU" would drain the node every time it
 * serves. The reading is a recent average, so it stays high for a moment after the last job ends: the work counts as
 * ours until `tailMs` after the last time it was seen.
 */
export function recentOwnWork(busyNow: () => boolean, now: () => number, tailMs = 3_000): () => boolean {
  let lastBusy = -Infinity;
  return () => {
    const t = now();
    if (busyNow()) lastBusy = t;
    return t - lastBusy < tailMs;
  };
}
