/**
 * Stop sequences, applied by the coordinator to the text it relays, so they hold for every backend and across a
 * failover (the node that continues an answer need not know them). Text that could be the start of a stop sequence
 * is held back until the next text shows whether it is; the stop sequence itself is never sent. Pure.
 */
export type StopScan = { stopAt: number } | { safeEnd: number };

/**
 * Looks at `text` from `sent` (everything before it has gone to the client, and cannot hold the start of a stop
 * sequence, because such a start is always held back). Returns where the earliest stop sequence begins, or how far the
 * text can be sent: up to the longest tail that is a proper prefix of some stop sequence.
 */
export function scanForStop(text: string, sent: number, stops: readonly string[]): StopScan {
  let stopAt = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop, sent);
    if (at !== -1 && (stopAt === -1 || at < stopAt)) stopAt = at;
  }
  if (stopAt !== -1) return { stopAt };
  let held = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, text.length - sent); k > held; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        held = k;
        break;
      }
    }
  }
  return { safeEnd: text.length - held };
}
