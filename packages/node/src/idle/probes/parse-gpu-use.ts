/**
 * GPU use by other processes, from the tools' recorded output (fixtures/). Pure.
 */

export interface GpuProcess {
  pid: number;
  usedMb: number;
}

/** `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader`: `2214, 512 MiB` per line. */
export function parseNvidiaComputeApps(stdout: string): GpuProcess[] {
  const out: GpuProcess[] = [];
  for (const line of stdout.split("\n")) {
    const [pid, used] = line.split(",").map((s) => s.trim());
    if (!pid || !/^\d+$/.test(pid)) continue;
    const mb = /^(\d+(?:\.\d+)?)\s*MiB$/i.exec(used ?? "");
    out.push({ pid: Number(pid), usedMb: mb ? Number(mb[1]) : 0 });
  }
  return out;
}

/** `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits`: one percentage per GPU (`[N/A]` skipped). */
export function parseNvidiaUtilization(stdout: string): number[] {
  return stdout
    .split("\n")
    .map((s) => s.trim())
    .filter((s) => /^\d+(\.\d+)?$/.test(s))
    .map((s) => Math.min(1, Number(s) / 100));
}

/** `rocm-smi --showpids`: the KFD process table (`PID  PROCESS NAME  GPU(s)  VRAM USED …`). */
export function parseRocmPids(stdout: string): GpuProcess[] {
  const out: GpuProcess[] = [];
  for (const line of stdout.split("\n")) {
    const cols = line.trim().split(/\t+|\s{2,}/).map((s) => s.trim());
    if (cols.length >= 4 && /^\d+$/.test(cols[0]!) && /^\d+$/.test(cols[3]!)) {
      out.push({ pid: Number(cols[0]), usedMb: Math.round(Number(cols[3]) / 2 ** 20) });
    }
  }
  return out;
}

/** `rocm-smi --showuse --json`: `{"card0": {"GPU use (%)": "62"}}`. */
export function parseRocmUse(stdout: string): number[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const [card, fields] of Object.entries(parsed as Record<string, Record<string, string>>)) {
    if (!card.startsWith("card")) continue;
    const use = Number(fields?.["GPU use (%)"]);
    if (Number.isFinite(use)) out.push(Math.min(1, use / 100));
  }
  return out;
}

/** macOS `ioreg -r -d 1 -c IOAccelerator`: `"Device Utilization %"=43` in PerformanceStatistics (Apple GPUs). */
export function parseIoregGpuUtilization(stdout: string): number | undefined {
  const m = /"Device Utilization %"\s*=\s*(\d+)/.exec(stdout);
  return m ? Math.min(1, Number(m[1]) / 100) : undefined;
}

/**
 * Utilisation attributable to others: the busiest GPU's figure when some process other than ours holds a compute
 * context, else 0 (our own llama.cpp must not drain us). With no per-process list, undefined: cannot tell.
 */
export function othersUtilization(processes: GpuProcess[] | undefined, utilization: number[], ownPids: ReadonlySet<number>): number | undefined {
  if (processes === undefined) return undefined;
  const others = processes.some((p) => !ownPids.has(p.pid));
  if (!others) return 0;
  return utilization.length > 0 ? Math.max(...utilization) : 1;
}
