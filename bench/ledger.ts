/**
 * ledger: what the payments ledger costs a coordinator (payments issue, "Must show" 3). End to end through the real
 * JobManager: an in-process coordinator (createCoordinator) on a SQLite file in a temp dir, two fake nodes on real
 * WebSocket sessions that accept every job at once and answer "ok" (3 completion tokens, usage, finish), and jobs
 * submitted straight to the JobManager (no HTTP: the client's own path is the same either way). The same run does
 * it twice, ledger off and ledger on (a non-zero price table, the client topped up), each on a fresh coordinator:
 *
 *  - loaded: `--jobs` (10,000) jobs kept `--concurrency` (64) in flight; the clock runs from the first submit until
 *    every job's `persisted` promise has resolved (record written and, ledger on, receipts issued and the job
 *    settled). With the ledger on, the store must then hold exactly one receipt per job and no escrow.
 *  - paced: `--paced` (1,000) jobs one at a time, for the latency a single client sees.
 *
 * Per job it records the time from the fake node's `finish` frame leaving the node to the client's `done` event (both
 * in this process, one `performance.now()`), and, ledger on, the wall time of the billing calls the JobManager makes
 * (`open` on submit, `settle` after the completion write), timed by wrapping the coordinator's own JobBilling.
 * Receipt signing by the node is not exercised: the fake nodes leave `receipt.sign` unanswered.
 *
 *   npm run bench -- ledger [--jobs 10000] [--paced 1000] [--concurrency 64]
 *
 * RESULT ledger_settle_per_s: jobs settled per second, loaded, ledger on (and ledger_settle_ratio: on ÷ off).
 * RESULT ledger_added_ms_p50: paced p50 of node finish → client done, ledger on minus ledger off
 * (ledger_added_ms_p50_loaded: the same under load).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import WebSocket from "ws";
import { type CoordinatorMessage, SESSION_PATH, type Signer, generateKeyPair, signRequest } from "@tessera/protocol";
import { createCoordinator, createLogger, loadCoordinatorConfig, topUp, clientCredit, type Coordinator } from "@tessera/coordinator";
import type { JobBilling } from "../packages/coordinator/src/payments/job-billing.js";
import { wasmSchnorrSigner } from "@tessera/protocol/wasm-schnorr";
import { fmt, percentile } from "./lib-stats.js";

const MODEL = "bench-ledger";
const OWNER = "key:bench";
const PRICES = { default: { input_per_1k: 100, output_per_1k: 400 } };
const NODES = 2;

interface Phase {
  jobs: number;
  wallMs: number;
  /** Node finish frame → client done, per job. */
  finishToDone: number[];
}

interface ModeResult {
  loaded: Phase;
  paced: Phase;
  open: number[];
  settle: number[];
  receipts: number;
  escrowLeft: number;
}

/** A fake node over a real session: accepts every job and streams a three-token answer at once. */
async function fakeNode(c: Coordinator, baseUrl: string, finishedAt: Map<string, number>): Promise<WebSocket> {
  const keys = generateKeyPair();
  const signer: Signer = wasmSchnorrSigner(keys.secretKeyHex);
  const body = JSON.stringify({
    type: "register",
    public_key: keys.publicKeyHex,
    version: "bench",
    hardware: { cpu_cores: 8, ram_mb: 16384, gpus: [] },
    models: [{ id: MODEL, backend: "bench" }],
    max_concurrency: 64,
  });
  const path = "/api/v1/nodes/register";
  const res = await c.app.inject({ method: "POST", url: path, headers: { ...signRequest(signer, { method: "POST", path, body }), "content-type": "application/json" }, payload: body });
  if (res.statusCode !== 200) throw new Error(`registration refused: ${res.body}`);
  const ws = new WebSocket(baseUrl.replace(/^http/, "ws") + SESSION_PATH, { headers: signRequest(signer, { method: "GET", path: SESSION_PATH }) });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const send = (m: object) => ws.send(JSON.stringify(m));
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as CoordinatorMessage;
    if (msg.type === "ping") send({ type: "pong", sent_at: msg.sent_at });
    else if (msg.type === "job.assign") {
      const id = msg.job_id;
      send({ type: "job.accept", job_id: id });
      send({ type: "job.part", job_id: id, part: { type: "text-delta", text: "o" } });
      send({ type: "job.part", job_id: id, part: { type: "text-delta", text: "k" } });
      send({ type: "job.part", job_id: id, part: { type: "text-delta", text: "." } });
      send({ type: "job.part", job_id: id, part: { type: "usage", prompt_tokens: 9, completion_tokens: 3 } });
      finishedAt.set(id, performance.now());
      send({ type: "job.part", job_id: id, part: { type: "finish", reason: "stop" } });
    }
  });
  return ws;
}

async function runMode(ledger: boolean, jobs: number, paced: number, concurrency: number): Promise<ModeResult> {
  const dir = mkdtempSync(join(tmpdir(), `tessera-bench-ledger-${ledger ? "on" : "off"}-`));
  const pricesFile = join(dir, "prices.json");
  writeFileSync(pricesFile, JSON.stringify(PRICES));
  const config = {
    ...loadCoordinatorConfig({ dataDir: dir, port: "0", admission: "open", pricesFile, checkRate: "0", canaryIntervalS: "0", logLevel: "silent" }, {}),
    ledger,
  };
  const c = await createCoordinator(config, { logger: createLogger("silent") });
  const open: number[] = [];
  const settle: number[] = [];
  if (ledger) {
    // The coordinator's own JobBilling, timed: JobManager keeps it in its (TypeScript-private) options.
    const inner = (c.ctx.jobs as unknown as { o: { billing: JobBilling } }).o.billing;
    c.ctx.jobs.attachBilling({
      open: async (job) => {
        const t = performance.now();
        await inner.open(job);
        open.push(performance.now() - t);
      },
      settle: async (job) => {
        const t = performance.now();
        const receipts = await inner.settle(job);
        settle.push(performance.now() - t);
        return receipts;
      },
      refund: (job) => inner.refund(job),
    });
    await c.ctx.store.postTransaction(topUp(OWNER, 1_000_000_000_000, "bench", new Date()));
  }
  await c.app.listen({ host: "127.0.0.1", port: 0 });
  const baseUrl = `http://127.0.0.1:${(c.app.server.address() as { port: number }).port}`;
  const finishedAt = new Map<string, number>();
  const sockets = await Promise.all(Array.from({ length: NODES }, () => fakeNode(c, baseUrl, finishedAt)));

  async function oneJob(i: number, finishToDone: number[], persisted: Promise<void>[]): Promise<void> {
    const job = await c.ctx.jobs.submit({
      ownerId: OWNER,
      model: MODEL,
      messages: [{ role: "user", content: `job ${i}: say ok` }],
      sampling: { max_tokens: 16, temperature: 0, top_p: 1 },
    });
    await new Promise<void>((resolve, reject) => {
      const ended = () => {
        if (job.status !== "completed") return reject(new Error(`job ${job.id} failed: ${job.error?.code} ${job.error?.message}`));
        finishToDone.push(performance.now() - finishedAt.get(job.id)!);
        finishedAt.delete(job.id);
        // Read after `done`: the completion write and the settlement are chained on it by then.
        persisted.push(job.persisted);
        resolve();
      };
      // `submit` resolves once the record is written, and the node may have answered by then, as the routes allow for.
      if (job.finished) return ended();
      const off = c.ctx.jobs.subscribe(job, (event) => {
        if (event.type === "text") return;
        off();
        ended();
      });
    });
  }

  async function phase(count: number, inFlight: number): Promise<Phase> {
    const finishToDone: number[] = [];
    const persisted: Promise<void>[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < count) await oneJob(next++, finishToDone, persisted);
      }),
    );
    await Promise.all(persisted);
    return { jobs: count, wallMs: performance.now() - started, finishToDone };
  }

  try {
    await phase(200, 16); // warm-up: JIT, statement caches, sessions
    open.length = 0;
    settle.length = 0;
    const loaded = await phase(jobs, concurrency);
    const paced_ = await phase(paced, 1);
    for (const ws of sockets) ws.close();
    await c.close();
    const db = new BetterSqlite3(join(dir, "coordinator.db"), { readonly: true });
    const receipts = (db.prepare("SELECT COUNT(*) AS n FROM receipts").get() as { n: number }).n;
    const escrowLeft = ledger
      ? Number((db.prepare("SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entries WHERE account LIKE 'client:%:escrow'").get() as { s: number }).s)
      : 0;
    const credit = ledger ? Number((db.prepare("SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entries WHERE account = ?").get(clientCredit(OWNER)) as { s: number }).s) : 0;
    db.close();
    if (ledger) {
      const total = 200 + jobs + paced;
      if (receipts !== total) throw new Error(`ledger on: ${receipts} receipts for ${total} jobs`);
      if (escrowLeft !== 0) throw new Error(`ledger on: ${escrowLeft} micro-USDC still in escrow`);
      process.stdout.write(`ledger on: ${receipts} receipts for ${total} jobs, escrow 0, client spent ${1_000_000_000_000 - credit} micro-USDC\n`);
    } else if (receipts !== 0) throw new Error(`ledger off: ${receipts} receipts`);
    return { loaded, paced: paced_, open, settle, receipts, escrowLeft };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { jobs: { type: "string", default: "10000" }, paced: { type: "string", default: "1000" }, concurrency: { type: "string", default: "64" } } });
  const jobs = Number(values.jobs);
  const paced = Number(values.paced);
  const concurrency = Number(values.concurrency);
  for (const [name, v] of Object.entries({ jobs, paced, concurrency })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`ledger: --${name} must be a positive integer, got ${v}`);
  }
  process.stdout.write(`ledger: ${jobs} jobs at ${concurrency} in flight, then ${paced} one at a time; ${NODES} fake nodes; SQLite file store; prices ${JSON.stringify(PRICES.default)}\n`);
  const off = await runMode(false, jobs, paced, concurrency);
  const on = await runMode(true, jobs, paced, concurrency);
  const rate = (p: Phase) => (p.jobs * 1000) / p.wallMs;
  for (const [name, r] of [["off", off], ["on", on]] as const) {
    process.stdout.write(
      `ledger ${name}: loaded ${fmt(rate(r.loaded), 1)} jobs/s (${fmt(r.loaded.wallMs / 1000, 2)} s); ` +
        `finish→done p50 ${fmt(percentile(r.loaded.finishToDone, 50))} ms p99 ${fmt(percentile(r.loaded.finishToDone, 99))} ms loaded, ` +
        `p50 ${fmt(percentile(r.paced.finishToDone, 50))} ms p99 ${fmt(percentile(r.paced.finishToDone, 99))} ms paced (${fmt(rate(r.paced), 1)} jobs/s)\n`,
    );
  }
  process.stdout.write(
    `billing work per job, loaded: open p50 ${fmt(percentile(on.open.slice(0, jobs), 50))} ms p99 ${fmt(percentile(on.open.slice(0, jobs), 99))} ms; ` +
      `settle p50 ${fmt(percentile(on.settle.slice(0, jobs), 50))} ms p99 ${fmt(percentile(on.settle.slice(0, jobs), 99))} ms\n`,
  );
  process.stdout.write(
    `billing work per job, paced: open p50 ${fmt(percentile(on.open.slice(jobs), 50))} ms p99 ${fmt(percentile(on.open.slice(jobs), 99))} ms; ` +
      `settle p50 ${fmt(percentile(on.settle.slice(jobs), 50))} ms p99 ${fmt(percentile(on.settle.slice(jobs), 99))} ms\n`,
  );
  process.stdout.write(`RESULT ledger_settle_per_s ${fmt(rate(on.loaded), 1)}\n`);
  process.stdout.write(`RESULT ledger_settle_ratio ${fmt(rate(on.loaded) / rate(off.loaded))}\n`);
  process.stdout.write(`RESULT ledger_added_ms_p50 ${fmt(percentile(on.paced.finishToDone, 50) - percentile(off.paced.finishToDone, 50))}\n`);
  process.stdout.write(`RESULT ledger_added_ms_p50_loaded ${fmt(percentile(on.loaded.finishToDone, 50) - percentile(off.loaded.finishToDone, 50))}\n`);
}
