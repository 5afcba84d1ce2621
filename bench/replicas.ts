/**
 * replicas: what running the coordinator as several replicas over PostgreSQL and NATS costs and buys (issue 12).
 * Real coordinator and daemon processes; the daemons serve a fake vLLM (its real wire format) that answers at once, so
 * the coordinators' own work is what is measured.
 *
 *   npm run bench -- replicas [--jobs 2400] [--blocks 5] [--concurrency 12] [--warm-up 3000] [--ttft-rounds 200] [--only-efficiency]
 *
 * `--only-efficiency` runs the first measurement alone; REPLICAS_PROF=<dir> writes CPU profiles of every replica there.
 *
 * - efficiency: the same load (N chat completions of 16 tokens, C at a time) on one replica with three daemons, and on
 *   three replicas with one daemon each and clients spread over all three (the scheduler may send a job to a node
 *   another replica holds). Jobs per coordinator CPU-second (process_cpu_seconds_total of every replica), 3 against 1.
 *   Both networks run side by side and take the load in interleaved blocks (N / --blocks jobs each, the order of the
 *   sides turning by one each block): the CPU a job of the same code moved by half between runs minutes apart on a shared VM,
 *   and interleaving puts both sides under the same drift. The RESULT is the median of the blocks' ratios (an odd
 *   number of blocks, so it is one block's), printed with all of them. Each replica is warmed with --warm-up jobs
 *   first (its JIT, its pools), so neither side pays for compiling; beside the figure, each side's CPU and write system
 *   calls per job (/proc), the CPU per job of the PostgreSQL server the replicas share (every process named postgres,
 *   the idle network's few background queries included), and the bus messages and bytes sent per job
 *   (tessera_bus_messages_total, tessera_bus_bytes_total). Two more sides take the load in every block, interleaved
 *   the same way: the three replicas at three times the load, each as busy as the one was (RESULT
 *   replicas_efficiency_equal_load: what replication costs at equal load a replica), and the one replica at a third of
 *   the load, as busy as each of the three (what a process pays a job when it idles between events: more wake-ups,
 *   fewer events a read, smaller group commits). Together they separate what replication itself costs from what
 *   running each process at a third of the load costs. A fifth side is three coordinators that share nothing (each
 *   its own database, no bus) with one daemon each, at the RESULT's load: the machine runs as many busy processes,
 *   each as loaded, as with the three replicas, so `RESULT replicas_efficiency_vs_unreplicated` (their jobs per
 *   CPU-second against the three replicas') is what replication costs apart from what sharing the machine's CPUs
 *   among three coordinators and three daemons costs.
 * - cross TTFT: three replicas, one node, on A; streams sent to A and to B (which reaches the node through A),
 *   interleaved one at a time after TTFT_WARM_UP_ROUNDS of each; the difference of the medians is what the bus adds
 *   to the time to first token (the median of each cross stream's TTFT less its neighbouring local one's is printed
 *   beside it). The cross path passes through four more process wake-ups than the local one (the NATS server and a
 *   replica, each way), so on a machine whose CPUs are busy every one of them waits its turn: the CPU pressure
 *   during the rounds is printed with the figure, and `bench replicas-hops` takes it apart hop by hop
 *   (bench/replicas-profile.md).
 * - reattach: four daemons joined to A (their lists A, B, C); A is SIGKILLed and a client on another replica asks
 *   each node for a job every 100 ms until one is served. Three kills (A, then B, then C, each replaced by a new
 *   replica at its address before the next), so 12 samples of the time until a dead replica's nodes serve again.
 */
import { SseDecoder } from "@tessera/protocol";
import { ReplicaNetwork, type ReplicaProcess, startFakeOpenAICompatible, waitUntil } from "@tessera/testkit";
import { startCpuPressure } from "./lib-cpu-pressure.js";
import { cpuProfileFlags } from "./lib-cpu-profile.js";
import { commandCpuSeconds, processWriteCalls } from "./lib-process-cpu.js";
import { fmt, percentile } from "./lib-stats.js";

const MODEL = "bench-model";
/**
 * Jobs each replica serves before anything is measured: enough for V8 to have optimised the hot path. Measured on a
 * 2-vCPU VM (CPU per job, 1 replica / 3 replicas): after 300 jobs 2.72 / 4.70 ms, 1,500 2.62 / 3.80, 4,000
 * 2.44 / 3.33, 8,000 2.37 / 3.49; a replica that has served a few hundred jobs is still compiling.
 */
const WARM_UP_JOBS = 3_000;
/**
 * Streams each way before the TTFT rounds. The cross path's own code (the remote worker, the link's codecs, the
 * outbox) runs only on cross streams, so it needs its own warm-up, as the local path got in the efficiency load.
 */
const TTFT_WARM_UP_ROUNDS = 100;

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
}

interface Usage {
  cpu: number;
  /** CPU seconds of the PostgreSQL server on this machine, which every replica shares (NaN off Linux). */
  databaseCpu: number;
  /** Write system calls (NaN off Linux). */
  writes: number;
  busMessages: number;
  busBytes: number;
}

/**
 * What the replicas have used so far, summed: CPU seconds, write system calls, and messages and bytes sent on the
 * bus; and the CPU seconds of the PostgreSQL server they share.
 */
async function usageOf(replicas: Array<{ url: string; process: { pid: number } }>): Promise<Usage> {
  const each = await Promise.all(
    replicas.map(async ({ url, process: { pid } }) => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const sent = (name: string) => [...text.matchAll(new RegExp(`^${name}\\{direction="sent"[^}]*\\} (\\S+)$`, "gm"))].reduce((n, m) => n + Number(m[1]), 0);
      return {
        cpu: Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)![1]),
        writes: processWriteCalls(pid) ?? NaN,
        busMessages: sent("tessera_bus_messages_total"),
        busBytes: sent("tessera_bus_bytes_total"),
      };
    }),
  );
  const database = { cpu: 0, databaseCpu: commandCpuSeconds("postgres"), writes: 0, busMessages: 0, busBytes: 0 };
  return each.reduce<Usage>((a, b) => combine(a, { ...b, databaseCpu: 0 }, (x, y) => x + y), database);
}

const USAGE_FIELDS = ["cpu", "databaseCpu", "writes", "busMessages", "busBytes"] as const;

/** `f` of each figure of `a` and `b`. */
function combine(a: Usage, b: Usage, f: (x: number, y: number) => number): Usage {
  return Object.fromEntries(USAGE_FIELDS.map((k) => [k, f(a[k], b[k])])) as unknown as Usage;
}

/** `after` less `before`, per job. */
function perJob(before: Usage, after: Usage, jobs: number): Usage {
  return combine(before, after, (b, a) => (a - b) / jobs);
}

async function completion(url: string): Promise<void> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "count" }], max_tokens: 16 }),
  });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/** `jobs` completions, `concurrency` at a time, the i-th sent to urls[i % urls.length]; returns the wall seconds. */
async function load(urls: string[], jobs: number, concurrency: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < jobs) {
        const i = next++;
        await completion(urls[i % urls.length]!);
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

async function ttftMs(url: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "count" }], max_tokens: 4, stream: true }),
  });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  const decoder = new SseDecoder();
  const text = new TextDecoder();
  let first = NaN;
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    for (const event of decoder.push(text.decode(bytes, { stream: true }))) {
      if (Number.isNaN(first) && event.data !== "[DONE]" && (JSON.parse(event.data) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content) first = performance.now() - started;
    }
  }
  return first;
}

/** Sends the node a one-token job from `url` every 100 ms until one completes; the seconds from `since` to that completion. */
async function untilServed(url: string, nodeId: string, since: number): Promise<number> {
  let served: number | undefined;
  const attempt = async () => {
    const created = await fetch(`${url}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "ping" }], max_tokens: 1, node_id: nodeId }),
    }).catch(() => undefined);
    if (!created?.ok) return;
    const { id } = (await created.json()) as { id: string };
    for (;;) {
      const view = (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as { status: string };
      if (view.status === "completed") served ??= performance.now();
      if (view.status === "completed" || view.status === "failed" || served !== undefined) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const inFlight: Promise<void>[] = [];
  while (served === undefined) {
    if (performance.now() - since > 60_000) throw new Error(`node ${nodeId.slice(0, 12)} was not served again within 60 s`);
    inFlight.push(attempt());
    await new Promise((r) => setTimeout(r, 100));
  }
  await Promise.allSettled(inFlight);
  return (served - since) / 1000;
}

export async function main(args: string[]): Promise<void> {
  const jobs = flag(args, "jobs", 2400);
  const blocks = flag(args, "blocks", 5);
  const blockJobs = Math.max(1, Math.round(jobs / blocks));
  const concurrency = flag(args, "concurrency", 12);
  const warmUpJobs = flag(args, "warm-up", WARM_UP_JOBS);
  const onlyEfficiency = args.includes("--only-efficiency");
  const ttftRounds = onlyEfficiency ? 0 : flag(args, "ttft-rounds", 200);
  const fake = await startFakeOpenAICompatible({ flavour: "vllm", models: [MODEL], behaviour: { tokensPerSecond: 0, reply: Array.from({ length: 64 }, (_, i) => `w${i}`).join(" ") } });
  const node = ["--backend", "vllm", "--vllm-host", fake.url, "--max-concurrency", "64"];
  const quiet = ["--log-level", "warn", "--rate-limit", "1000000"];
  const prof = cpuProfileFlags("REPLICAS_PROF");
  process.stdout.write(
    `replicas: ${blocks} blocks of ${blockJobs} jobs of 16 tokens a side, ${concurrency} at a time, after ${warmUpJobs} warm-up jobs a replica` +
      (onlyEfficiency ? "\n" : `; ${ttftRounds} TTFT rounds each way; 3 replica kills\n`),
  );
  const networks: ReplicaNetwork[] = [];
  try {
    // Three replicas over the bus. First only a1 (on A) serves: a stream sent to A is local, one sent to B crosses the
    // bus to A. Then b1 and c1 join, one node a replica, for the efficiency load.
    const trio = await ReplicaNetwork.create({ bus: true, coordinatorArgs: quiet, coordinatorNodeFlags: prof });
    networks.push(trio);
    const replicas: ReplicaProcess[] = [];
    for (const id of ["r-a", "r-b", "r-c"]) replicas.push(await trio.startReplica(id));
    const urls = replicas.map((r) => r.url);
    await trio.startDaemon("a1", ["r-a"], node);
    await waitUntil(async () => (await trio.nodeStatus("r-b", trio.daemons.get("a1")!.id)) === "online", 30_000);
    for (let i = 0; i < (ttftRounds > 0 ? TTFT_WARM_UP_ROUNDS : 0); i++) {
      await ttftMs(urls[0]!);
      await ttftMs(urls[1]!);
    }
    const pressure = startCpuPressure();
    const local: number[] = [];
    const cross: number[] = [];
    for (let i = 0; i < ttftRounds; i++) {
      if (i % 2 === 0) {
        local.push(await ttftMs(urls[0]!));
        cross.push(await ttftMs(urls[1]!));
      } else {
        cross.push(await ttftMs(urls[1]!));
        local.push(await ttftMs(urls[0]!));
      }
    }
    const pressurePct = pressure();
    const paired = cross.map((c, i) => c - local[i]!);
    if (ttftRounds > 0) process.stdout.write(
      `TTFT p50: node on the replica asked ${fmt(percentile(local, 50), 2)} ms, on another replica ${fmt(percentile(cross, 50), 2)} ms; ` +
        `p90 ${fmt(percentile(local, 90), 2)} / ${fmt(percentile(cross, 90), 2)} ms; median of paired differences ${fmt(percentile(paired, 50), 2)} ms; ` +
        `CPU pressure ${fmt(pressurePct, 0)}% over the ${ttftRounds} rounds\n`,
    );

    await trio.startDaemon("b1", ["r-b"], node);
    await trio.startDaemon("c1", ["r-c"], node);
    await waitUntil(async () => (await Promise.all([...trio.daemons.values()].map((d) => trio.nodeStatus("r-b", d.id)))).every((s) => s === "online"), 30_000);

    // One replica with three daemons, beside the three (idle between its blocks).
    const solo = await ReplicaNetwork.create({ bus: false, coordinatorArgs: quiet, coordinatorNodeFlags: prof });
    networks.push(solo);
    const one = await solo.startReplica("solo");
    for (const name of ["n1", "n2", "n3"]) await solo.startDaemon(name, ["solo"], node);
    // Three coordinators that share nothing (each its own database, no bus), one daemon each: as many busy processes
    // as the three replicas, each as loaded, with no replication between them.
    const apart: ReplicaProcess[] = [];
    for (const id of ["x-a", "x-b", "x-c"]) {
      const alone = await ReplicaNetwork.create({ bus: false, coordinatorArgs: quiet, coordinatorNodeFlags: prof });
      networks.push(alone);
      apart.push(await alone.startReplica(id));
      await alone.startDaemon(`${id}-1`, [id], node);
    }
    const apartUrls = apart.map((r) => r.url);
    await load([one.url], warmUpJobs, concurrency);
    await load(urls, warmUpJobs * urls.length, concurrency);
    await load(apartUrls, warmUpJobs * apartUrls.length, concurrency);

    // Five sides take the load in each block, in an order that turns by one each block: one replica at C streams;
    // three at C (the RESULT: the same load, spread); three at 3C (each replica as busy as the one); the one replica
    // at C/3 (as busy as each of the three at C); and three coordinators that share nothing at C. The middle two
    // separate what replication costs from what a process pays a job when it idles between events (more wake-ups,
    // fewer events a read, smaller group commits); the last, what it costs from what the machine charges three busy
    // coordinators and three daemons for sharing its CPUs.
    const third = Math.max(1, Math.round(concurrency / urls.length));
    const side = (name: string, sideUrls: string[], sideReplicas: typeof replicas, streams: number, sideJobs: number) => ({
      name,
      urls: sideUrls,
      replicas: sideReplicas,
      streams,
      jobs: sideJobs,
      total: undefined as Usage | undefined,
      wall: 0,
      cpuPerJob: [] as number[],
    });
    const solo1 = side("solo", [one.url], [one], concurrency, blockJobs);
    const trio3 = side("trio", urls, replicas, concurrency, blockJobs);
    const busy3 = side("busy", urls, replicas, concurrency * urls.length, blockJobs * urls.length);
    const soloThird = side("third", [one.url], [one], third, blockJobs);
    const apart3 = side("apart", apartUrls, apart, concurrency, blockJobs);
    const sides = [solo1, trio3, busy3, soloThird, apart3];
    for (let b = 0; b < blocks; b++) {
      for (let k = 0; k < sides.length; k++) {
        const s = sides[(b + k) % sides.length]!;
        const before = await usageOf(s.replicas);
        s.wall += await load(s.urls, s.jobs, s.streams);
        const used = perJob(before, await usageOf(s.replicas), s.jobs);
        s.cpuPerJob.push(used.cpu);
        s.total = s.total ? combine(s.total, used, (x, y) => x + y) : used;
      }
    }
    /** Block by block, the one replica's CPU a job against `other`'s. */
    const against = (other: typeof solo1) => solo1.cpuPerJob.map((c, i) => c / other.cpuPerJob[i]!);
    const ratios = against(trio3);
    const equalLoad = against(busy3);
    const thirdLoad = against(soloThird);
    const unreplicated = apart3.cpuPerJob.map((c, i) => c / trio3.cpuPerJob[i]!);
    // The mean of the blocks' per-job figures.
    const mean = (s: typeof solo1) => combine(s.total!, s.total!, (x) => x / blocks);
    const [m1, m3, mBusy, mThird, mApart] = [mean(solo1), mean(trio3), mean(busy3), mean(soloThird), mean(apart3)];
    const efficiency =
      `RESULT replicas_efficiency ${fmt(percentile(ratios, 50))}\nRESULT replicas_efficiency_equal_load ${fmt(percentile(equalLoad, 50))}\n` +
      `RESULT replicas_efficiency_vs_unreplicated ${fmt(percentile(unreplicated, 50))}\n`;
    const costs = (u: Usage) => `${fmt(u.cpu * 1000, 2)} ms CPU and ${fmt(u.writes, 1)} write calls a job, PostgreSQL ${fmt(u.databaseCpu * 1000, 2)} ms CPU a job`;
    const rate = (s: typeof solo1) => `${fmt((s.jobs * blocks) / s.wall, 1)} jobs/s, ${fmt(1 / mean(s).cpu, 1)} jobs per CPU-s`;
    const list = (r: number[]) => `${r.map((x) => fmt(x)).join(", ")} (median ${fmt(percentile(r, 50))})`;
    process.stdout.write(
      `efficiency: 1 replica at ${concurrency} at a time ${rate(solo1)} (${costs(m1)}); ` +
        `3 replicas at ${concurrency} ${rate(trio3)} (${costs(m3)}; ${fmt(m3.busMessages, 2)} bus messages, ${fmt(m3.busBytes, 0)} bytes); ` +
        `3 against 1 block by block ${list(ratios)}, all blocks together ${fmt(m1.cpu / m3.cpu)}\n` +
        `  each replica as busy as the one: 3 replicas at ${busy3.streams} ${rate(busy3)} (${costs(mBusy)}); against the one ${list(equalLoad)}\n` +
        `  the one replica as busy as each of the three: at ${third} at a time ${rate(soloThird)} (${costs(mThird)}); the one at ${concurrency} against it ${list(thirdLoad)}\n` +
        `  three coordinators that share nothing, one daemon each, at ${concurrency}: ${rate(apart3)} (${costs(mApart)}); the three replicas against them ${list(unreplicated)}\n`,
    );
    while (networks.length > 0) await networks.pop()!.stop();
    if (onlyEfficiency) return void process.stdout.write(efficiency);

    // Reattach: four nodes on A; A, then B, then C die, each replaced at its address before the next kill.
    const ring = await ReplicaNetwork.create({ bus: true, coordinatorArgs: quiet });
    networks.push(ring);
    for (const id of ["r-a", "r-b", "r-c"]) await ring.startReplica(id);
    for (const name of ["m1", "m2", "m3", "m4"]) await ring.startDaemon(name, ["r-a", "r-b", "r-c"], node);
    const samples: number[] = [];
    const kills: Array<[string, string, string]> = [
      ["r-a", "r-c", "r-a2"],
      ["r-b", "r-a2", "r-b2"],
      ["r-c", "r-b2", "r-c2"],
    ];
    for (const [victim, asker, replacement] of kills) {
      const dead = ring.replicas.get(victim)!;
      const since = performance.now();
      dead.process.kill("SIGKILL");
      await dead.process.exited;
      const times = await Promise.all([...ring.daemons.values()].map((d) => untilServed(ring.replicas.get(asker)!.url, d.id, since)));
      process.stdout.write(`killed ${victim}: its nodes served again through the others after ${times.map((t) => fmt(t, 2)).join(", ")} s\n`);
      samples.push(...times);
      ring.replicas.delete(victim);
      await ring.startReplica(replacement, dead.port);
    }
    process.stdout.write(`reattach: p50 ${fmt(percentile(samples, 50), 2)} s, p95 ${fmt(percentile(samples, 95), 2)} s, max ${fmt(Math.max(...samples), 2)} s over ${samples.length}\n`);

    process.stdout.write(efficiency);
    process.stdout.write(`RESULT replicas_cross_ttft_added_ms_p50 ${fmt(percentile(cross, 50) - percentile(local, 50), 2)}\n`);
    process.stdout.write(`RESULT replicas_reattach_p95_s ${fmt(percentile(samples, 95), 2)}\n`);
  } finally {
    for (const n of networks) await n.stop();
    await fake.http.close();
  }
}
