import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's times: 100 on every Linux this runs on (USER_HZ). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system, every thread) a process has used so far, from /proc/<pid>/stat; undefined off Linux or
 * when the process is gone. Resolution 10 ms: compare over rounds of a second or more.
 */
export function processCpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/**
 * Write system calls a process has made so far (every thread), from /proc/<pid>/io; undefined off Linux or when the
 * process is gone. On loopback each write also runs the receiver's TCP path in the writer's time, so on a small VM
 * the writes a job costs are much of its CPU.
 */
export function processWriteCalls(pid: number): number | undefined {
  let io: string;
  try {
    io = readFileSync(`/proc/${pid}/io`, "utf8");
  } catch {
    return undefined;
  }
  return Number(/^syscw: (\d+)$/m.exec(io)?.[1]);
}
