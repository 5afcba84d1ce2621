/**
 * replicas-hops: where the time to first token goes when a stream crosses the bus (issue 12), hop by hop. The set-up
 * of `bench replicas`' cross TTFT (three replicas, one node on A, a fake vLLM that answers at once), with every
 * stamp taken in this one process, so all are on one clock:
 *
 *   client sends ─▶ replica ─▶ [bus: assign] ─▶ A ─▶ node ─▶ fake vLLM ─▶ node ─▶ A ─▶ [bus: reports] ─▶ replica ─▶ client
 *
 * - `sent`: the client's fetch starts;
 * - `assign`: a tap subscribed to every replica's commands subject sees the `assign` (the server delivers it to A and
 *   to the tap at the same moment); cross streams only;
 * - `backend`: the fake vLLM has read the node's request (it answers its first token in the same turn);
 * - `report`: the tap sees the first `reports` message carrying a text-delta; cross streams only;
 * - `first`: the client has decoded the first token.
 *
 * Streams to A (local) and to B (cross) alternate one at a time, so both see the same machine. Then what one hop costs
 * on this machine as it is: a message to another, idle process through the NATS server and over plain TCP
 * (`--hop-rounds` each way), and the CPU pressure during the streams (Linux PSI), which is what makes hops slow.
 * `--dump` writes every stream's stamps (wall-clock ms) for joining with stamps taken inside the replicas.
 *
 *   npm run bench -- replicas-hops [--rounds 200] [--hop-rounds 300] [--dump stamps.jsonl]
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { SseDecoder } from "@tessera/protocol";
import { NATS_URL, ReplicaNetwork, startFakeOpenAICompatible, waitUntil } from "@tessera/testkit";
import { startCpuPressure } from "./lib-cpu-pressure.js";
import { fmt, percentile } from "./lib-stats.js";

const MODEL = "bench-model";

interface Stamps {
  sent: number;
  assign?: number;
  backend?: number;
  report?: number;
  first: number;
  job?: string;
}

/**
 * One-way times (ms) of a message to another process and of its answer back, `rounds` of each with `gapMs` of quiet
 * before each, as a stream's hops see them (the receiver has been idle, so it must be woken): through the NATS server,
 * and over a plain TCP connection (the floor: one process waking another). Each answer carries the receiver's stamp.
 */
async function sparseHops(rounds: number, gapMs: number): Promise<{ nats: number[]; tcp: number[] }> {
  const prefix = `tessera.bench.hop.${process.pid}`;
  const peer = spawn(process.execPath, [...process.execArgv, fileURLToPath(new URL("./lib-bus-echo-peer.ts", import.meta.url)), "--nats", NATS_URL, "--prefix", prefix], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      peer.once("exit", (code) => reject(new Error(`the echo peer exited (${code})`)));
      peer.stdout.on("data", (d: Buffer) => {
        const m = /ready (\d+)/.exec(String(d));
        if (m) resolve(Number(m[1]));
      });
    });
    const wall = () => performance.timeOrigin + performance.now();
    let answered: ((stamps: [number, number]) => void) | undefined;
    const nc = await connect({ servers: NATS_URL });
    nc.subscribe(`${prefix}.pong`, { callback: (_err, msg) => answered?.([Number(new TextDecoder().decode(msg.data)), wall()]) });
    await nc.flush();
    const socket = createConnection({ port, host: "127.0.0.1", noDelay: true });
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.on("data", (d: Buffer) => answered?.([Number(String(d).trim()), wall()]));
    const out = { nats: [] as number[], tcp: [] as number[] };
    for (const kind of ["nats", "tcp"] as const) {
      for (let i = 0; i < rounds; i++) {
        await new Promise((r) => setTimeout(r, gapMs));
        const got = new Promise<[number, number]>((r) => (answered = r));
        const sent = wall();
        if (kind === "nats") nc.publish(`${prefix}.ping`);
        else socket.write("x");
        const [there, back] = await got;
        out[kind].push(there - sent, back - there);
      }
    }
    socket.destroy();
    await nc.close();
    return out;
  } finally {
    peer.kill("SIGTERM");
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { rounds: { type: "string", default: "200" }, "hop-rounds": { type: "string", default: "300" }, dump: { type: "string" } } });
  const rounds = Number(values.rounds);
  const hopRounds = Number(values["hop-rounds"]);
  const fake = await startFakeOpenAICompatible({ flavour: "vllm", models: [MODEL], behaviour: { tokensPerSecond: 0, reply: Array.from({ length: 64 }, (_, i) => `w${i}`).join(" ") } });
  // The prompt carries a marker, so the backend's request and the bus's assign name the stream they belong to.
  const byMarker = new Map<string, Stamps>();
  const markerOfJob = new Map<string, string>();
  const recorded = fake.http.requests;
  const push = recorded.push.bind(recorded);
  recorded.push = (...items) => {
    const now = performance.now();
    for (const item of items) {
      const content = (item.body as { messages?: { content?: unknown }[] } | undefined)?.messages?.at(-1)?.content;
      const stamps = typeof content === "string" ? byMarker.get(content) : undefined;
      if (stamps) stamps.backend ??= now;
    }
    return push(...items);
  };
  const node = ["--backend", "vllm", "--vllm-host", fake.url, "--max-concurrency", "64"];
  const quiet = ["--log-level", "warn", "--rate-limit", "1000000"];
  const tap = await connect({ servers: NATS_URL, name: "bench-replicas-hops-tap" });
  const decoder = new TextDecoder();
  tap.subscribe("tessera.v1.*.replica.*.commands", {
    callback: (_err, msg) => {
      const now = performance.now();
      const command = JSON.parse(decoder.decode(msg.data)) as { type: string; job?: { job_id: string; messages: { content: string }[] } };
      if (command.type !== "assign" || !command.job) return;
      const marker = command.job.messages.at(-1)!.content;
      markerOfJob.set(command.job.job_id, marker);
      const stamps = byMarker.get(marker);
      if (stamps) {
        stamps.assign ??= now;
        stamps.job = command.job.job_id;
      }
    },
  });
  tap.subscribe("tessera.v1.*.replica.*.reports", {
    callback: (_err, msg) => {
      const now = performance.now();
      const { reports } = JSON.parse(decoder.decode(msg.data)) as { reports: { job_id?: string; part?: { type: string; text?: string } }[] };
      for (const r of reports) {
        if (r.part?.type !== "text-delta" || !r.part.text) continue;
        const stamps = byMarker.get(markerOfJob.get(r.job_id!) ?? "");
        if (stamps) stamps.report ??= now;
      }
    },
  });
  await tap.flush();

  let seq = 0;
  const stream = async (url: string): Promise<Stamps> => {
    const marker = `count ${process.pid}-${seq++}`;
    const stamps: Stamps = { sent: performance.now(), first: NaN };
    byMarker.set(marker, stamps);
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: marker }], max_tokens: 4, stream: true }),
    });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
    const sse = new SseDecoder();
    const text = new TextDecoder();
    for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
      for (const event of sse.push(text.decode(bytes, { stream: true }))) {
        if (Number.isNaN(stamps.first) && event.data !== "[DONE]" && (JSON.parse(event.data) as { choices: { delta?: { content?: string } }[] }).choices[0]?.delta?.content) {
          stamps.first = performance.now();
        }
      }
    }
    byMarker.delete(marker);
    return stamps;
  };

  process.stdout.write(`replicas-hops: ${rounds} streams each way, interleaved; ${hopRounds} sparse hops each way through NATS and TCP\n`);
  const net = await ReplicaNetwork.create({ bus: true, coordinatorArgs: quiet });
  try {
    const urls: string[] = [];
    for (const id of ["r-a", "r-b", "r-c"]) urls.push((await net.startReplica(id)).url);
    await net.startDaemon("a1", ["r-a"], node);
    await waitUntil(async () => (await net.nodeStatus("r-b", net.daemons.get("a1")!.id)) === "online", 30_000);
    for (let i = 0; i < 100; i++) await Promise.all([stream(urls[0]!), stream(urls[1]!)]);
    const pressure = startCpuPressure();
    const local: Stamps[] = [];
    const cross: Stamps[] = [];
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        local.push(await stream(urls[0]!));
        cross.push(await stream(urls[1]!));
      } else {
        cross.push(await stream(urls[1]!));
        local.push(await stream(urls[0]!));
      }
    }
    const pressurePct = pressure();
    const hops = await sparseHops(hopRounds, 10);
    if (values.dump) {
      // Wall-clock milliseconds (performance.timeOrigin + now), comparable with other processes' stamps on this machine.
      const wall = (t: number | undefined) => (t === undefined ? null : performance.timeOrigin + t);
      const lines = [...local.map((s) => ["local", s] as const), ...cross.map((s) => ["cross", s] as const)].map(([kind, s]) =>
        JSON.stringify({ kind, job: s.job ?? null, sent: wall(s.sent), assign: wall(s.assign), backend: wall(s.backend), report: wall(s.report), first: wall(s.first) }),
      );
      writeFileSync(values.dump, lines.join("\n") + "\n");
    }

    const row = (name: string, xs: number[]) => `  ${name.padEnd(58)} p50 ${fmt(percentile(xs, 50), 2).padStart(7)}  p90 ${fmt(percentile(xs, 90), 2).padStart(7)} ms\n`;
    const span = (ss: Stamps[], from: Exclude<keyof Stamps, "job">, to: Exclude<keyof Stamps, "job">) => ss.filter((s) => s[from] !== undefined && s[to] !== undefined).map((s) => s[to]! - s[from]!);
    process.stdout.write("local (stream to A, node on A):\n");
    process.stdout.write(row("client sent → backend read the request", span(local, "sent", "backend")));
    process.stdout.write(row("backend → client has the first token", span(local, "backend", "first")));
    process.stdout.write(row("TTFT", span(local, "sent", "first")));
    process.stdout.write("cross (stream to B, node on A):\n");
    process.stdout.write(row("client sent → assign on the bus (B's own work + 1 hop)", span(cross, "sent", "assign")));
    process.stdout.write(row("assign on the bus → backend read the request", span(cross, "assign", "backend")));
    process.stdout.write(row("client sent → backend read the request", span(cross, "sent", "backend")));
    process.stdout.write(row("backend → first part report on the bus (A + 1 hop)", span(cross, "backend", "report")));
    process.stdout.write(row("report on the bus → client has the first token", span(cross, "report", "first")));
    process.stdout.write(row("backend → client has the first token", span(cross, "backend", "first")));
    process.stdout.write(row("TTFT", span(cross, "sent", "first")));
    const paired = cross.map((c, i) => c.first - c.sent - (local[i]!.first - local[i]!.sent));
    process.stdout.write(`added by the bus: difference of p50s ${fmt(percentile(span(cross, "sent", "first"), 50) - percentile(span(local, "sent", "first"), 50), 2)} ms; p50 of paired differences ${fmt(percentile(paired, 50), 2)} ms\n`);
    process.stdout.write(`machine: CPU pressure ${fmt(pressurePct, 0)}% during the streams (the share of the time some runnable process waited for a CPU)\n`);
    process.stdout.write(row("one hop to an idle process through NATS (10 ms apart)", hops.nats));
    process.stdout.write(row("one hop to an idle process over plain TCP (10 ms apart)", hops.tcp));
  } finally {
    await net.stop();
    await tap.close();
    await fake.http.close();
  }
}
