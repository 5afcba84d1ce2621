/**
 * beats: what hearing another replica's beats costs a replica (packages/coordinator/src/bus/design.md, "Beats"), whole
 * beats (every node's summary, each second: what replicas sent before deltas) against deltas (what changed since the
 * last beat), side by side in one run.
 *
 *   npm run bench -- beats [--nodes 1000,2000,5000] [--beats 20] [--busy 0.3] [--churn 0.002] [--rounds 2]
 *
 * Two replicas' links (the coordinator's ReplicaLink) in this process, joined by a bus that hands each message to the
 * other's subscription at once (NATS's 1 MiB max_payload, so a large beat goes in parts as it would on NATS). Replica
 * A holds `--nodes` GPU nodes with one model each; every simulated second a `--busy` share of them change their load
 * (a job starts or ends), a `--churn` share leave and as many new ones join, and A beats. Each round beats `--beats`
 * seconds whole, then as many as deltas (alternating which goes first): the bytes A sends and the time B takes to
 * decode, check and apply them (the subscription's handler, timed around each call).
 *
 * Prints per node count: bytes per beat, B's milliseconds hearing a beat (median, p95) and A's making it, for each, and
 * `RESULT beats_delta_vs_whole_ms_<nodes>` (median ms of a delta over a whole beat; lower is better) and
 * `RESULT beats_delta_vs_whole_bytes_<nodes>`.
 */
import { parseArgs } from "node:util";
import type { CoordinatorMessage } from "@tessera/protocol";
import { ManualClock } from "../packages/coordinator/src/clock.js";
import { createLogger } from "../packages/coordinator/src/logger.js";
import { NodeRegistry } from "../packages/coordinator/src/registry.js";
import { SessionWorker } from "../packages/coordinator/src/sessions/session-worker.js";
import type { Bus } from "../packages/coordinator/src/bus/bus.js";
import { ReplicaLink } from "../packages/coordinator/src/bus/replica-link.js";
import type { NodeSession } from "../packages/coordinator/src/workers/node-session.js";
import { fmt, percentile } from "./lib-stats.js";

const MAX_PAYLOAD = 1024 * 1024;
const OPERATOR = "b".repeat(64);

/** Buses of one process: a message goes to every other bus's handlers for its subject (NATS noEcho), timed there. */
class LoopbackHub {
  private readonly handlers = new Map<Bus, Map<string, Array<(data: Uint8Array) => void>>>();
  /** Each message's handling time at the receiving bus, ms, and its size, for the subject ending `.beats`. */
  readonly received: Array<{ ms: number; bytes: number }> = [];

  bus(): Bus {
    const own = new Map<string, Array<(data: Uint8Array) => void>>();
    const bus: Bus = {
      publish: (subject, data) => {
        // Beats go in parts under max_payload; the NATS bus would chunk anything else, which beats never need.
        if (data.byteLength > MAX_PAYLOAD) return "too_large";
        for (const [other, subs] of this.handlers) {
          if (other === bus) continue;
          for (const handler of subs.get(subject) ?? []) {
            const started = performance.now();
            handler(data);
            if (subject.endsWith(".beats")) this.received.push({ ms: performance.now() - started, bytes: data.byteLength });
          }
        }
        return "sent";
      },
      subscribe: (subject, handler) => {
        own.set(subject, [...(own.get(subject) ?? []), handler]);
        return () => own.set(subject, (own.get(subject) ?? []).filter((h) => h !== handler));
      },
      maxPayload: () => MAX_PAYLOAD,
      flush: async () => {},
      close: async () => {},
    };
    this.handlers.set(bus, own);
    return bus;
  }
}

class SilentSession implements NodeSession {
  constructor(readonly nodeId: string) {}
  send(_message: CoordinatorMessage) {}
  sendBinary() {}
  rttMs() { return 12.5; }
  close() {}
}

const nodeId = (i: number): string => `c${i.toString(16).padStart(63, "0")}`;

async function linkOf(hub: LoopbackHub, id: string, clock: ManualClock): Promise<{ link: ReplicaLink; registry: NodeRegistry }> {
  const registry = new NodeRegistry(clock, 90_000, { onOffline: () => {}, onOnline: () => {} });
  const link = new ReplicaLink({
    bus: hub.bus(),
    replicaId: id,
    registry,
    jobs: { dispatch() {}, accepted() {}, rejected() {}, part() {}, failed() {}, lost() {} },
    clock,
    logger: createLogger("silent"),
    standing: { applyQuarantine() {}, applyJudgment() {} },
    onHeldHere() {},
  });
  await link.start();
  return { link, registry };
}

function join(registry: NodeRegistry, id: string): void {
  registry.register(
    {
      type: "register",
      public_key: id,
      version: "1.4.0",
      hardware: { cpu_cores: 16, ram_mb: 65_536, gpus: [{ vendor: "nvidia", name: "NVIDIA GeForce RTX 4090", vram_mb: 24_564 }], tier: ">=24gb" },
      models: [{ id: "llama-3.1-8b-instruct-q4_k_m", backend: "embedded", size_bytes: 4_920_734_272, scoring: true, constrained_scoring: true, sha256: "9".repeat(64) }],
      max_concurrency: 4,
    },
    OPERATOR,
  );
  registry.attach(id, new SessionWorker(new SilentSession(id)), new SilentSession(id));
}

interface Side {
  bytes: number[];
  /** B's time hearing each beat, and A's making and sending it (the beat call less B's handling, which runs inside it). */
  ms: number[];
  senderMs: number[];
}

/** One side of a round: `beats` simulated seconds of load and churn on A, each ending in A's beat (whole or a delta). */
function run(hub: LoopbackHub, a: { link: ReplicaLink; registry: NodeRegistry }, clock: ManualClock, ids: string[], next: { id: number }, beats: number, busy: number, churn: number, whole: boolean, side: Side, random: () => number): void {
  for (let s = 0; s < beats; s++) {
    for (const id of ids) {
      if (random() >= busy) continue;
      const jobs = a.registry.get(id)!.activeJobs;
      if (jobs.size > 0 && random() < 0.5) jobs.delete([...jobs][0]!);
      else jobs.add(`job-${next.id++}`);
    }
    const leaving = Math.round(ids.length * churn);
    for (let k = 0; k < leaving; k++) {
      const at = Math.floor(random() * ids.length);
      const gone = ids[at]!;
      a.registry.detach(gone, a.registry.get(gone)!.worker!, "session closed");
      ids[at] = nodeId(next.id++);
      join(a.registry, ids[at]!);
    }
    clock.advance(1_000);
    const from = hub.received.length;
    const started = performance.now();
    a.link.beat(whole);
    const total = performance.now() - started;
    const heard = hub.received.slice(from);
    const receiverMs = heard.reduce((sum, m) => sum + m.ms, 0);
    side.bytes.push(heard.reduce((sum, m) => sum + m.bytes, 0));
    side.ms.push(receiverMs);
    side.senderMs.push(total - receiverMs);
  }
}

const USAGE = "usage: npm run bench -- beats [--nodes 1000,2000,5000] [--beats 20] [--busy 0.3] [--churn 0.002] [--rounds 2]\n";

export async function main(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        nodes: { type: "string", default: "1000,2000,5000" },
        beats: { type: "string", default: "20" },
        busy: { type: "string", default: "0.3" },
        churn: { type: "string", default: "0.002" },
        rounds: { type: "string", default: "2" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`error [bad_request]: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const counts = values.nodes.split(",").map(Number);
  const beats = Number(values.beats);
  const busy = Number(values.busy);
  const churn = Number(values.churn);
  const rounds = Number(values.rounds);
  if (counts.some((n) => !Number.isInteger(n) || n < 1) || !(beats >= 1) || !(busy >= 0 && busy <= 1) || !(churn >= 0 && churn <= 1) || !(rounds >= 1)) {
    process.stderr.write("error [bad_request]: --nodes takes positive integers, --beats and --rounds at least 1, --busy and --churn a share in [0, 1]\n");
    process.exit(2);
  }
  console.log(`beats: ${beats} beats a side a round, ${rounds} rounds; each second ${busy * 100}% of the nodes change load, ${churn * 100}% leave and as many join`);
  let seed = 7;
  const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  for (const count of counts) {
    const clock = new ManualClock();
    const hub = new LoopbackHub();
    const a = await linkOf(hub, "bench-a", clock);
    const b = await linkOf(hub, "bench-b", clock);
    const ids = Array.from({ length: count }, (_, i) => nodeId(i));
    for (const id of ids) join(a.registry, id);
    const next = { id: count };
    // B hears A whole once, and A hears B (so A's next beat is whole for it, as on a real start).
    clock.advance(1_000);
    b.link.beat();
    a.link.beat(true);
    const whole: Side = { bytes: [], ms: [], senderMs: [] };
    const delta: Side = { bytes: [], ms: [], senderMs: [] };
    for (let r = 0; r < rounds; r++) {
      const order: Array<[boolean, Side]> = r % 2 === 0 ? [[true, whole], [false, delta]] : [[false, delta], [true, whole]];
      for (const [isWhole, side] of order) {
        // The first delta after a whole beat is the delta every beat after it is: start each delta side from a whole beat.
        if (!isWhole) a.link.beat(true);
        run(hub, a, clock, ids, next, beats, busy, churn, isWhole, side, random);
      }
    }
    const shown = [...b.registry.all()].filter((n) => n.online).length;
    if (shown !== count) throw new Error(`B shows ${shown} of A's ${count} nodes: the deltas lost track`);
    const line = (label: string, side: Side) =>
      `${String(count).padStart(6)} nodes ${label.padEnd(6)} ${fmt(percentile(side.bytes, 50) / 1024)} KiB a beat   B hears it in ${fmt(percentile(side.ms, 50))} ms median, ${fmt(percentile(side.ms, 95))} ms p95; A makes it in ${fmt(percentile(side.senderMs, 50))} ms median`;
    console.log(line("whole", whole));
    console.log(line("delta", delta));
    console.log(`RESULT beats_delta_vs_whole_ms_${count} ${fmt(percentile(delta.ms, 50) / percentile(whole.ms, 50), 3)}`);
    console.log(`RESULT beats_delta_vs_whole_bytes_${count} ${fmt(percentile(delta.bytes, 50) / percentile(whole.bytes, 50), 3)}`);
    await a.link.stop();
    await b.link.stop();
  }
}
