import { readFileSync } from "node:fs";

/**
 * Starts a CPU-pressure reading (Linux PSI, /proc/pressure/cpu "some"): the returned function gives the share of the
 * wall time since the start, in %, during which at least one runnable process waited for a CPU; NaN where PSI is
 * missing. Near 100% every wake-up of an idle process waits its turn, so each process a request passes through adds
 * scheduling delay: a latency compared across paths with different hop counts needs this figure beside it.
 */
export function startCpuPressure(): () => number {
  const read = () => {
    try {
      return Number(/^some .*total=(\d+)/m.exec(readFileSync("/proc/pressure/cpu", "utf8"))![1]);
    } catch {
      return NaN;
    }
  };
  const us0 = read();
  const t0 = performance.now();
  return () => ((read() - us0) / 1000 / (performance.now() - t0)) * 100;
}
