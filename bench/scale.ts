/**
 * scale: one coordinator (a real process) with 2,000 simulated nodes heartbeating every 2 s (signed) and 200 routed
 * requests per second. Reports heartbeats/s handled, routing decision p99 (from the coordinator's own histogram),
 * false offline marks, and what the coordinator's CPU costs per 1,000 heartbeats and per 1,000 routed requests.
 *
 * The figures are the coordinator's, not the driver's:
 * - an offline mark (the coordinator runs with a 6 s threshold, three missed heartbeats) counts as false only when
 *   that node's last heartbeat had left the driver within the threshold before the mark; marks after the driver
 *   itself fell behind are reported apart, with the driver's lateness (each heartbeat's send time against when its
 *   timer was due) beside them;
 * - CPU cost comes from the coordinator's own `process_cpu_seconds_total`, in two phases: heartbeats alone
 *   (`--quiet-seconds`), giving CPU-seconds per 1,000 heartbeats, then heartbeats and requests, whose extra CPU over
 *   that rate is the requests' (per 1,000 routed). These do not depend on how fast the driver is, and they are what
 *   sizes a coordinator (docs/operator-coordinator.md, "Sizing").
 *
 * The load generator (this process and its two worker threads) runs on the same small machine as the coordinator, so
 * it keeps out of the coordinator's way, as if the coordinator had a machine of its own: it runs on the upper half of
 * the CPUs only (taskset) and at a lower priority. Without that, on 2 cores the driver's threads preempt the
 * coordinator mid-decision and the wall-clock p99 measures the driver (nearly every decision over 1 ms had spent that
 * time waiting on the run queue, per /proc/thread-self/schedstat). Nothing is favoured inside the coordinator: it
 * runs at normal priority, on any CPU, with its normal settings. Preemption that remains (the coordinator's own GC
 * threads, other processes) is what separates the wall-clock p99 from the on-CPU p99.
 *
 *   npm run bench -- scale [--nodes 2000] [--rps 200] [--seconds 30] [--quiet-seconds 10]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { availableParallelism, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { ManagedProcess, TESSERA_BIN, freePort } from "@tessera/testkit";
import { cpuProfileFlags } from "./lib-cpu-profile.js";
import { fmt, percentile } from "./lib-stats.js";

const MODEL = "sim-model";
/** Niceness of the load generator's threads (the coordinator keeps 0). */
const LOAD_GENERATOR_NICE = 15;

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
}

interface WorkerStats {
  heartbeatsFailed: number;
  maxHeartbeatGapMs: number;
  maxHeartbeatRttMs: number;
  falseOfflineMarks: number;
  driverLateOfflineMarks: number;
  latenessMs: number[];
}

interface Histogram {
  buckets: Map<number, number>;
  count: number;
}

interface Scrape {
  cpuSeconds: number;
  heartbeats: number;
  offline: number;
  route: Histogram;
  routeCpu: Histogram;
  completed: number;
}

function histogram(text: string, name: string): Histogram {
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, "gm"))) {
    buckets.set(m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2]));
  }
  return { buckets, count: Number(text.match(new RegExp(`^${name}_count (\\S+)$`, "m"))?.[1] ?? 0) };
}

async function scrape(url: string): Promise<Scrape> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (re: RegExp) => Number(text.match(re)?.[1] ?? 0);
  if (process.env.SCALE_DEBUG) process.stdout.write(text.split("\n").filter((l) => l.startsWith("tessera_")).join("\n") + "\n");
  let offline = 0;
  for (const m of text.matchAll(/tessera_nodes_marked_offline_total\{[^}]*\} (\d+)/g)) offline += Number(m[1]);
  return {
    cpuSeconds: value(/^process_cpu_seconds_total (\S+)$/m),
    heartbeats: value(/^tessera_heartbeats_total (\S+)$/m),
    offline,
    route: histogram(text, "tessera_routing_decision_seconds"),
    routeCpu: histogram(text, "tessera_routing_decision_cpu_seconds"),
    completed: value(/^tessera_jobs_finished_total\{status="completed",error=""\} (\S+)$/m),
  };
}

/** The upper bound of the histogram bucket holding the p-th percentile of the samples between two scrapes. */
function bucketPercentile(before: Histogram, after: Histogram, p: number): number {
  const total = after.count - before.count;
  for (const [le, count] of [...after.buckets].sort((a, b) => a[0] - b[0])) {
    if (count - (before.buckets.get(le) ?? 0) >= (p / 100) * total) return le;
  }
  return Infinity;
}

/** Confines this process to the upper half of the CPUs and lowers its priority; says what it did. */
function keepOutOfCoordinatorsWay(): string {
  lowerOwnPriority(LOAD_GENERATOR_NICE);
  const cpus = availableParallelism();
  if (cpus < 2) return `one CPU, shared with the coordinator at nice ${LOAD_GENERATOR_NICE}`;
  const set = `${Math.floor(cpus / 2)}-${cpus - 1}`;
  const pinned = spawnSync("taskset", ["--all-tasks", "--pid", "--cpu-list", set, String(process.pid)], { stdio: "ignore" });
  return pinned.status === 0
    ? `CPUs ${set} of 0-${cpus - 1}, nice ${LOAD_GENERATOR_NICE}`
    : `not confined (taskset unavailable), nice ${LOAD_GENERATOR_NICE}: expect preemption in the wall-clock figures`;
}

/**
 * Lowers every thread of this process (the main thread, the workers, V8's GC helpers): Linux applies a priority to
 * one thread, so each is set by its id. Elsewhere only the calling thread can be set.
 */
function lowerOwnPriority(nice: number): void {
  let threads: string[];
  try {
    threads = readdirSync("/proc/self/task");
  } catch {
    setPriority(nice);
    return;
  }
  for (const tid of threads) setPriority(Number(tid), nice);
}

export async function main(args: string[]): Promise<void> {
  const nodes = flag(args, "nodes", 2000);
  const rps = flag(args, "rps", 200);
  const seconds = flag(args, "seconds", 30);
  const quietSeconds = flag(args, "quiet-seconds", 10);
  const heartbeatMs = 2000;
  const offlineAfterS = 6;
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-scale-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // SCALE_PROF=<dir> writes a CPU profile of the coordinator there (to see where its time goes under this load).
  const profile = cpuProfileFlags("SCALE_PROF");
  const coordinator = new ManagedProcess("coordinator", process.execPath, [
    ...profile,
    TESSERA_BIN, "coordinator", "start", "--port", String(port), "--data-dir", dir, "--open",
    "--rate-limit", "1000000", "--offline-after", String(offlineAfterS), "--heartbeat-interval", String(heartbeatMs / 1000), "--log-level", process.env.SCALE_DEBUG ? "info" : "warn",
  ], { env: process.env });
  const workers: Worker[] = [];
  try {
    await coordinator.waitFor(/listening on/);
    const perWorker = Math.ceil(nodes / 2);
    process.stdout.write(`scale: starting ${nodes} simulated nodes (signed register + session + heartbeats every ${heartbeatMs / 1000} s)…\n`);
    const ready = [];
    for (let w = 0; w < 2; w++) {
      // Workers don't inherit the tsx loader: register it inside the worker before importing the TypeScript entry.
      const entry = JSON.stringify(new URL("./lib-scale-worker.ts", import.meta.url).href);
      const worker = new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${entry}); });`, {
        eval: true,
        workerData: { url, count: Math.min(perWorker, nodes - w * perWorker), heartbeatMs, offlineAfterMs: offlineAfterS * 1000, model: MODEL },
      });
      workers.push(worker);
      ready.push(new Promise((resolve, reject) => {
        worker.on("message", (m: { ready?: boolean }) => m.ready && resolve(m));
        worker.once("error", reject);
      }));
    }
    await Promise.all(ready);
    process.stdout.write(`load generator: ${keepOutOfCoordinatorsWay()}\n`);
    const joined = await scrape(url);
    for (const w of workers) w.postMessage("measure");
    process.stdout.write(`all ${nodes} nodes registered with open sessions; heartbeats alone for ${quietSeconds} s…\n`);
    const quietStart = performance.now();
    await new Promise((r) => setTimeout(r, quietSeconds * 1000));
    const before = await scrape(url);
    const quietWall = (performance.now() - quietStart) / 1000;
    const quietBeats = before.heartbeats - joined.heartbeats;
    const cpuPerHeartbeat = quietBeats > 0 ? (before.cpuSeconds - joined.cpuSeconds) / quietBeats : Number.NaN;
    process.stdout.write(`heartbeats alone: ${fmt(quietBeats / quietWall, 1)}/s handled, ${fmt((before.cpuSeconds - joined.cpuSeconds) / quietWall * 100, 1)}% of one core\n`);
    process.stdout.write(`measuring for ${seconds} s at ${rps} requests/s\n`);
    const started = performance.now();
    let sent = 0;
    let failed = 0;
    /** Why requests failed: the error code of each refusal (or the HTTP status), or the client-side error. */
    const failures = new Map<string, number>();
    const fail = (why: string) => {
      failed++;
      failures.set(why, (failures.get(why) ?? 0) + 1);
    };
    const inflight = new Set<Promise<void>>();
    while (performance.now() - started < seconds * 1000) {
      const due = Math.floor(((performance.now() - started) / 1000) * rps);
      while (sent < due) {
        sent++;
        const p: Promise<void> = fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
        })
          .then(async (res) => {
            const text = await res.text();
            if (res.ok) return;
            let code = `HTTP ${res.status}`;
            try {
              code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? code;
            } catch {
              // not JSON: the status says it
            }
            fail(code);
          })
          .catch((err: unknown) => fail(`client: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`))
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(inflight);
    const wall = (performance.now() - started) / 1000;
    const after = await scrape(url);
    const stats = await Promise.all(workers.map((w) => new Promise<WorkerStats>((resolve) => {
      w.once("message", resolve);
      w.postMessage("stats");
    })));
    const hbPerS = (after.heartbeats - before.heartbeats) / wall;
    const lateness = stats.flatMap((s) => s.latenessMs);
    process.stdout.write(
      `driver: heartbeat lateness p50 ${fmt(percentile(lateness, 50), 1)} ms, p99 ${fmt(percentile(lateness, 99), 1)} ms, max ${fmt(Math.max(...lateness), 0)} ms (${lateness.length} heartbeats); ` +
        `longest gap between one node's heartbeats ${fmt(Math.max(...stats.map((s) => s.maxHeartbeatGapMs)), 0)} ms, ` +
        `slowest heartbeat round trip ${fmt(Math.max(...stats.map((s) => s.maxHeartbeatRttMs)), 0)} ms\n`,
    );
    const cpu = (after.cpuSeconds - before.cpuSeconds) / wall;
    const routed = after.route.count - before.route.count;
    const cpuForRequests = after.cpuSeconds - before.cpuSeconds - (after.heartbeats - before.heartbeats) * cpuPerHeartbeat;
    const routeP99Ms = bucketPercentile(before.route, after.route, 99) * 1000;
    const routeP50Ms = bucketPercentile(before.route, after.route, 50) * 1000;
    const routeCpuP99Ms = bucketPercentile(before.routeCpu, after.routeCpu, 99) * 1000;
    // Marks while the driver was still registering 2,000 nodes come from the driver being too busy to send
    // heartbeats on time on a small machine; they are reported apart from the measured window's, and within it the
    // driver says which marks followed its own lateness.
    const falseOffline = stats.reduce((n, s) => n + s.falseOfflineMarks, 0);
    const driverLate = stats.reduce((n, s) => n + s.driverLateOfflineMarks, 0);
    process.stdout.write(
      `offline marks while the nodes were joining: ${joined.offline}; after (heartbeats alone and with requests): ${after.offline - joined.offline} by the coordinator's count, ` +
        `of which ${falseOffline} false (the node's last heartbeat had left within ${offlineAfterS} s), ${driverLate} after the driver fell behind, ` +
        `and ${after.offline - joined.offline - falseOffline - driverLate} the driver saw no session close for (no session open at the mark)\n`,
    );
    process.stdout.write(
      `heartbeats handled ${fmt(hbPerS, 1)}/s (offered ${fmt(nodes / (heartbeatMs / 1000), 0)}/s; ${stats.reduce((n, s) => n + s.heartbeatsFailed, 0)} failed), ` +
        `requests ${sent - failed}/${sent} ok${failed ? ` (failed: ${[...failures].map(([why, n]) => `${n} ${why}`).join(", ")})` : ""} (${fmt((after.completed - before.completed) / wall, 1)} completed/s), ` +
        `routing decision p50 ≤ ${fmt(routeP50Ms, 3)} ms, p99 ≤ ${fmt(routeP99Ms, 3)} ms wall, p99 ≤ ${fmt(routeCpuP99Ms, 3)} ms on a CPU (wall less run-queue waits; histogram bucket bounds), coordinator CPU ${fmt(cpu * 100, 1)}% of one core\n`,
    );
    process.stdout.write(`RESULT scale_heartbeats_per_s ${fmt(hbPerS, 1)}\n`);
    process.stdout.write(`RESULT scale_route_p99_ms ${fmt(routeP99Ms, 3)}\n`);
    process.stdout.write(`RESULT scale_route_cpu_p99_ms ${fmt(routeCpuP99Ms, 3)}\n`);
    process.stdout.write(`RESULT scale_false_offline ${falseOffline}\n`);
    process.stdout.write(`RESULT scale_driver_late_offline ${driverLate}\n`);
    process.stdout.write(`RESULT scale_driver_lateness_p99_ms ${fmt(percentile(lateness, 99), 1)}\n`);
    process.stdout.write(`RESULT scale_coordinator_cpu_cores ${fmt(cpu, 3)}\n`);
    process.stdout.write(`RESULT scale_cpu_s_per_1000_heartbeats ${fmt(cpuPerHeartbeat * 1000, 3)}\n`);
    process.stdout.write(`RESULT scale_cpu_s_per_1000_requests ${fmt(routed > 0 ? (cpuForRequests / routed) * 1000 : Number.NaN, 3)} (${routed} routed)\n`);
  } finally {
    if (process.env.SCALE_DEBUG) process.stdout.write(coordinator.logText.split("\n").filter((l) => /offline|registered|session open/.test(l)).slice(0, 30).join("\n") + "\n");
    await Promise.all(workers.map((w) => w.terminate()));
    await coordinator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
