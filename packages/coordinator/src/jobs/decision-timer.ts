import { openSync, readSync } from "node:fs";

export interface DecisionTiming {
  /** Wall-clock seconds from start to stop. */
  wallSeconds: number;
  /**
   * Seconds the section ran on a CPU: on Linux, wall time less the time the OS kept this thread waiting in its run
   * queue (preempted by other threads or processes); elsewhere the process's CPU time, which also counts other threads.
   */
  cpuSeconds: number;
}

/**
 * Times short synchronous sections of the thread that created it (routing decisions), telling the section's own
 * cost apart from time the OS did not run it. On Linux the thread's run-queue delay comes from
 * `/proc/thread-self/schedstat` (second field, ns, updated whenever the thread is switched back in), read with one
 * positioned read on a file opened once: about 1 µs, like `process.cpuUsage()`. Sections must not nest.
 */
class DecisionTimer {
  private readonly fd: number | undefined;
  private readonly buffer = Buffer.alloc(96);
  private wallStart = 0;
  private waitStart = 0;
  private cpuStart: NodeJS.CpuUsage | undefined;

  constructor() {
    try {
      this.fd = openSync("/proc/thread-self/schedstat", "r");
      if (this.runQueueDelayNs() === undefined) this.fd = undefined;
    } catch {
      this.fd = undefined;
    }
  }

  start(): void {
    if (this.fd === undefined) this.cpuStart = process.cpuUsage();
    else this.waitStart = this.runQueueDelayNs()!;
    this.wallStart = performance.now();
  }

  stop(): DecisionTiming {
    const wallSeconds = (performance.now() - this.wallStart) / 1000;
    if (this.fd === undefined) {
      const cpu = process.cpuUsage(this.cpuStart);
      return { wallSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
    }
    const waited = (this.runQueueDelayNs()! - this.waitStart) / 1e9;
    return { wallSeconds, cpuSeconds: Math.max(0, wallSeconds - waited) };
  }

  /** The second of the three numbers in schedstat: time spent waiting on a run queue, in ns. */
  private runQueueDelayNs(): number | undefined {
    const n = readSync(this.fd!, this.buffer, 0, this.buffer.length, 0);
    let i = 0;
    while (i < n && this.buffer[i] !== 0x20) i++;
    let value = 0;
    let digits = 0;
    for (i++; i < n; i++, digits++) {
      const c = this.buffer[i]!;
      if (c < 0x30 || c > 0x39) break;
      value = value * 10 + (c - 0x30);
    }
    return digits > 0 ? value : undefined;
  }
}

let forThisThread: DecisionTimer | undefined;

/** The timer of the calling thread (one file handle per thread, shared by every coordinator in it). */
export function decisionTimer(): DecisionTimer {
  return (forThisThread ??= new DecisionTimer());
}
