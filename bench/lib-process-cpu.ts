import { readFileSync, readdirSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's times: 100 on every Linux this runs on (USER_HZ). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system, every thread) a process has used so far, from /proc/<pid>/stat; undefined off Linux or
 * when the process is gone. Resolution 10 ms: compare over rounds of a second or more.
 */
export function processCpuSeconds(pid: number | string): number | undefined {
  const fields = statFields(pid);
  return fields && (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** The fields of /proc/<pid>/stat after the command name (field 3 onwards); undefined off Linux or when it is gone. */
function statFields(pid: number | string): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * CPU seconds used so far by every process named `command` (/proc/<pid>/comm), with the children they reaped: for a
 * server on this machine such as PostgreSQL, whose backends come and go, the whole server's CPU. NaN off Linux.
 */
export function commandCpuSeconds(command: string): number {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return NaN;
  }
  let seconds = 0;
  for (const pid of pids) {
    let comm: string;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      continue; // it ended while it was read
    }
    const fields = comm === command ? statFields(pid) : undefined;
    // utime, stime, cutime, cstime: fields 14-17 of stat.
    if (fields) seconds += (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / USER_HZ;
  }
  return seconds;
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
