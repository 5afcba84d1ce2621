/**
 * verification: how well checks by a reference node catch cheating nodes, and what they cost honest ones
 * (trust issue §4, "Must show" 3; method and runs in packages/coordinator/src/trust/design.md "Verification").
 *
 * One ~56M-parameter F16 llama file made by the testkit (the 50m preset with a feed-forward width of 1536, so that
 * its Q4_K_M twin exists). Honest nodes generate greedily on one engine and the reference scores their tokens on the
 * other (embedded llama.cpp ↔ stage runtime, alternating): a real source of cross-engine numerical difference.
 * Cheaters, each on prompts of its own:
 *   (i) swap: a file of the same shape and name with other weights (seed 2), generating on llama.cpp;
 *   (ii) quant: the Q4_K_M quantisation of the same weights (Q4_K, Q6_K for the head and some attn_v/ffn_down),
 *        claimed as the F16 file, generating on llama.cpp; also judged as if its backend sent no log-probabilities;
 *   (iii) garbage: random tokens, with made-up log-probabilities;
 *   (iv) truncate: an honest answer cut short and claimed as `stop` (with the matching usage);
 *   (v) usage: an honest answer with inflated completion tokens.
 * (iv) and (v) start from honest generations of this run (a cheater would produce exactly those tokens); (iv) is
 * scored afresh on its cut answer; (v) reuses the honest job's reference scores, which are the same numbers a new
 * scoring would give (teacher forcing of the same tokens is deterministic on both engines).
 *
 * Detection within J jobs at check rate r: a cheat is caught once a checked job fails, so
 * P = 1 − (1 − r·d)^J with d the per-check detection rate measured here (a Monte-Carlo over the measured verdicts
 * is printed beside it); with d = 1 that is 1 − 0.9^50 = 99.48 %, the most any check can give. Compute: CPU time of
 * scoring on the reference over CPU time of generating on the node, times the check rate 0.05, for the costlier of
 * the two cross-engine directions. False positives count every honest job (the 2-thread pair's too).
 *
 * --calibrate adds a cross-CPU pair (--cpu-jobs, default 200 each way): the embedded engine on this CPU's ggml kernels
 * and a llama-server loading another x86 variant's (--cpu-variant, default haswell: AVX2 only), each generating and
 * the other scoring (bench/lib-verification-cpu-pair.ts); skipped with a notice where that cannot run here.
 *
 * Usage: npm run bench -- verification [--quick] [--honest 1000] [--cheats 100] [--max-tokens 16] [--seed 1]
 *        npm run bench -- verification --calibrate [--honest 800] [--max-tokens 32] [--stop-jobs 100] [--cpu-jobs 200]
 *          [--cpu-variant haswell] [--out file.json]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { makeTinyModel, SeededRandom } from "@tessera/testkit";
import { createEmbeddedEngine, createStageEngine, type Generation, type ReferenceScores, type VerificationEngine } from "@tessera/node/verification";
import {
  CALIBRATED_THRESHOLDS,
  checkVerdict,
  maxTop1Mismatches,
  STATISTIC_POSITIONS,
  type CheckName,
  type ClaimedResult,
  type Verdict,
} from "../packages/coordinator/src/trust/check-verdict.js";
import { startOtherCpuEngine } from "./lib-verification-cpu-pair.js";
import { fitExponentialTail, gapThreshold, rateUpperBound, tailProbability } from "./lib-verification-calibration.js";
import { fmt, percentile } from "./lib-stats.js";

const CHECKS: CheckName[] = ["top20", "eos", "length", "usage", "top1", "logprob"];

function cpu<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.cpuUsage();
  return fn().then((value) => {
    const d = process.cpuUsage(start);
    return [value, (d.user + d.system) / 1e6];
  });
}

/** A canonical prompt: BOS then 4..28 ids of ordinary tokens (random-weight model: the ids' meaning is irrelevant). */
function prompt(rng: SeededRandom, bos: number): number[] {
  const len = 4 + (rng.nextUint32() % 25);
  return [bos, ...Array.from({ length: len }, () => 3 + (rng.nextUint32() % 31997))];
}

function honestClaim(g: Generation, maxTokens: number): ClaimedResult {
  return {
    outputTokens: g.tokens,
    finishReason: g.finishReason,
    usage: { promptTokens: g.promptTokens, completionTokens: g.tokens.length },
    maxTokens,
    greedy: true,
    logprobs: g.logprobs.map((l) => l.logprob),
  };
}

interface HonestJob {
  pair: string;
  prompt: number[];
  gen: Generation;
  ref: ReferenceScores;
  refEngine: VerificationEngine;
  verdict: Verdict;
  genCpu: number;
  refCpu: number;
}

interface Engines {
  embedded: VerificationEngine;
  stage: VerificationEngine;
  close(): Promise<void>;
}

export async function main(args: string[] = []): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      calibrate: { type: "boolean", default: false },
      honest: { type: "string" },
      cheats: { type: "string" },
      "max-tokens": { type: "string" },
      "thread-jobs": { type: "string" },
      "stop-jobs": { type: "string" },
      "cpu-jobs": { type: "string" },
      "cpu-variant": { type: "string", default: "haswell" },
      seed: { type: "string", default: "1" },
      out: { type: "string" },
    },
  });
  const calibrate = values.calibrate!;
  const honestJobs = Number(values.honest ?? (values.quick ? 60 : calibrate ? 800 : 1000));
  const cheatJobs = Number(values.cheats ?? (values.quick ? 20 : 100));
  const maxTokens = Number(values["max-tokens"] ?? (calibrate ? 32 : 16));
  const threadJobs = Number(values["thread-jobs"] ?? (values.quick ? 4 : 40));
  const stopJobs = Number(values["stop-jobs"] ?? (calibrate ? 100 : 0));
  const cpuJobs = Number(values["cpu-jobs"] ?? (calibrate ? 200 : 0));
  const seed = Number(values.seed);
  for (const [name, v] of Object.entries({ honestJobs, cheatJobs, maxTokens, threadJobs, stopJobs, cpuJobs, seed })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`verification: ${name} must be a non-negative integer, got ${v}`);
  }

  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });
  const shape = { preset: "50m" as const, feedForwardLength: 1536, name: "tessera-verify-50m" };
  const f16 = await makeTinyModel({ path: join(dir, "verify-50m-f16-s1.gguf"), weightType: "f16", seed: 1, ...shape });
  console.log(`model: ${f16.parameterCount} parameters, F16, ${(f16.sizeBytes / 2 ** 20).toFixed(1)} MiB, sha256 ${f16.sha256.slice(0, 16)}…`);
  console.log(`max_tokens ${maxTokens}, prompts 5-29 tokens, greedy; seed ${seed}; thresholds: ${JSON.stringify(CALIBRATED_THRESHOLDS)}`);

  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const engines: Engines = {
    embedded: await createEmbeddedEngine({ modelPath: f16.path, llama, threads: 1, contextSize: 512 }),
    stage: createStageEngine({ path: f16.path, maxContext: 512 }),
    async close() {
      await this.embedded.close();
      await this.stage.close();
    },
  };
  const rng = new SeededRandom(seed * 7919 + (calibrate ? 1 : 0));

  async function honestJob(pair: string, gen: VerificationEngine, ref: VerificationEngine): Promise<HonestJob> {
    const p = prompt(rng, f16.bosId);
    const [g, genCpu] = await cpu(() => gen.generate(p, { maxTokens }));
    const [scores, refCpu] = await cpu(() => ref.score(p, g.tokens));
    return { pair, prompt: p, gen: g, ref: scores, refEngine: ref, verdict: checkVerdict(honestClaim(g, maxTokens), scores), genCpu, refCpu };
  }

  const honest: HonestJob[] = [];
  const started = Date.now();
  for (let j = 0; j < honestJobs; j++) {
    honest.push(j % 2 === 0 ? await honestJob("embedded→stage", engines.embedded, engines.stage) : await honestJob("stage→embedded", engines.stage, engines.embedded));
    if ((j + 1) % 100 === 0) console.log(`  honest ${j + 1}/${honestJobs} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  if (threadJobs > 0) {
    // Another thread count: llama.cpp at 2 threads generates, llama.cpp at 1 thread (batched) scores.
    const twoThreads = await createEmbeddedEngine({ modelPath: f16.path, llama, threads: 2, contextSize: 512 });
    for (let j = 0; j < threadJobs; j++) honest.push(await honestJob("embedded 2 threads→embedded 1 thread", twoThreads, engines.embedded));
    await twoThreads.close();
  }
  if (stopJobs > 0) {
    // Honest stops: the same shape with a strong EOS row (eosScale 2.5), so answers end before max_tokens and the
    // EOS check meets honest `stop`s. Both directions, as above.
    const stopping = await makeTinyModel({ path: join(dir, "verify-50m-f16-s3-eos.gguf"), weightType: "f16", seed: 3, eosScale: 2.5, ...shape });
    const e = await createEmbeddedEngine({ modelPath: stopping.path, llama, threads: 1, contextSize: 512 });
    const s = createStageEngine({ path: stopping.path, maxContext: 512 });
    for (let j = 0; j < stopJobs; j++) honest.push(j % 2 === 0 ? await honestJob("EOS-heavy file: embedded→stage", e, s) : await honestJob("EOS-heavy file: stage→embedded", s, e));
    await e.close();
  }
  let cpus: { thisCpu: string; otherCpu: string } | undefined;
  if (cpuJobs > 0) {
    // Another CPU's kernels: the embedded engine (this CPU's variant) and a llama-server on another variant's, both
    // directions, cpuJobs each.
    const other = await startOtherCpuEngine(values["cpu-variant"]!, f16);
    if ("skip" in other) console.log(`\n*** cross-CPU pair skipped: ${other.skip} ***\n`);
    else {
      cpus = { thisCpu: other.thisCpu, otherCpu: other.otherCpu };
      const there = other.engine.kind;
      for (let j = 0; j < 2 * cpuJobs; j++) {
        honest.push(j % 2 === 0 ? await honestJob(`embedded→${there}`, engines.embedded, other.engine) : await honestJob(`${there}→embedded`, other.engine, engines.embedded));
        if ((j + 1) % 100 === 0) console.log(`  cross-CPU ${j + 1}/${2 * cpuJobs} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      }
      await other.close();
    }
  }

  reportHonest(honest);
  if (calibrate) {
    writeCalibration(honest, maxTokens, values.out ?? join(dir, "calibration-verification.json"), f16.sha256, cpus);
    await engines.close();
    await llama.dispose();
    return;
  }

  // Cheaters.
  const cheats = new Map<string, Verdict[]>();
  const judge = (name: string, claim: ClaimedResult, ref: ReferenceScores) => {
    const list = cheats.get(name) ?? [];
    list.push(checkVerdict(claim, ref));
    cheats.set(name, list);
  };
  const other = await makeTinyModel({ path: join(dir, "verify-50m-f16-s2.gguf"), weightType: "f16", seed: 2, ...shape });
  const quant = await makeTinyModel({ path: join(dir, "verify-50m-q4_k_m-s1.gguf"), weightType: "q4_k_m", seed: 1, ...shape });
  for (const [name, file] of [
    ["swap", other],
    ["quant", quant],
  ] as const) {
    const cheater = await createEmbeddedEngine({ modelPath: file.path, llama, threads: 1, contextSize: 512 });
    for (let j = 0; j < cheatJobs; j++) {
      const p = prompt(rng, f16.bosId);
      const g = await cheater.generate(p, { maxTokens });
      const ref = await engines.stage.score(p, g.tokens);
      judge(name, honestClaim(g, maxTokens), ref);
      if (name === "quant") judge("quant_no_logprobs", { ...honestClaim(g, maxTokens), logprobs: undefined }, ref);
    }
    await cheater.close();
  }
  for (let j = 0; j < cheatJobs; j++) {
    const p = prompt(rng, f16.bosId);
    const tokens = Array.from({ length: maxTokens }, () => 3 + (rng.nextUint32() % 31997));
    const ref = await (j % 2 === 0 ? engines.stage : engines.embedded).score(p, tokens);
    const claim: ClaimedResult = { outputTokens: tokens, finishReason: "length", usage: { promptTokens: p.length, completionTokens: tokens.length }, maxTokens, greedy: true, logprobs: tokens.map(() => -0.05) };
    judge("garbage", claim, ref);
  }
  const cuttable = honest.filter((h) => h.gen.tokens.length >= 2);
  for (let j = 0; j < Math.min(cheatJobs, cuttable.length); j++) {
    const h = cuttable[j];
    const cut = 1 + (rng.nextUint32() % (h.gen.tokens.length - 1));
    const tokens = h.gen.tokens.slice(0, cut);
    const ref = await h.refEngine.score(h.prompt, tokens);
    judge("truncate", { ...honestClaim(h.gen, maxTokens), outputTokens: tokens, finishReason: "stop", usage: { promptTokens: h.prompt.length, completionTokens: cut }, logprobs: h.gen.logprobs.slice(0, cut).map((l) => l.logprob) }, ref);
  }
  for (let j = 0; j < Math.min(cheatJobs, honest.length); j++) {
    const h = honest[j];
    const claim = honestClaim(h.gen, maxTokens);
    judge("usage", { ...claim, usage: { ...claim.usage, completionTokens: claim.usage.completionTokens + 1 + (rng.nextUint32() % maxTokens) } }, h.ref);
  }
  await engines.close();
  await llama.dispose();

  console.log("\ncheats (per-check detection = share of checked jobs failing; which checks fired):");
  const detection = new Map<string, number>();
  for (const [name, verdicts] of cheats) {
    const d = verdicts.filter((v) => !v.passed).length / verdicts.length;
    detection.set(name, d);
    const fired = CHECKS.map((c) => `${c} ${verdicts.filter((v) => v.failures.some((f) => f.check === c)).length}`).join(", ");
    const mism = verdicts.map((v) => v.stats.top1Mismatches);
    const gaps = verdicts.map((v) => v.stats.meanLogprobGap).filter((g): g is number => g !== null);
    console.log(
      `  ${name.padEnd(18)} jobs ${verdicts.length}  detected ${fmt(100 * d, 1)} %  [${fired}]  top-1 mismatches median ${percentile(mism, 50)} (min ${Math.min(...mism)})` +
        (gaps.length ? `  mean |Δlogprob| median ${fmt(percentile(gaps, 50), 3)} (min ${fmt(Math.min(...gaps), 3)})` : ""),
    );
  }
  const mc = new SeededRandom(seed + 99);
  const within = (name: string, jobs: number, rate: number) => {
    const d = detection.get(name)!;
    const verdicts = cheats.get(name)!;
    let caught = 0;
    const trials = 20_000;
    for (let t = 0; t < trials; t++) {
      for (let j = 0; j < jobs; j++) {
        if (mc.nextUnit() < rate && !verdicts[mc.nextUint32() % verdicts.length].passed) {
          caught++;
          break;
        }
      }
    }
    return { analytic: 1 - (1 - rate * d) ** jobs, simulated: caught / trials };
  };
  console.log("\ndetection within J jobs at check rate 0.1 (1 − (1 − 0.1·d)^J; Monte-Carlo over the verdicts beside it):");
  const results: Array<[string, number]> = [];
  for (const [name, result, jobs] of [
    ["swap", "verification_detect_swap", 50],
    ["quant", "verification_detect_quant", 100],
    ["quant_no_logprobs", "", 100],
    ["garbage", "verification_detect_garbage", 50],
    ["truncate", "verification_detect_truncate", 50],
    ["usage", "verification_detect_usage", 50],
  ] as const) {
    const w = within(name, jobs, 0.1);
    const target = name.startsWith("quant") ? "target ≥ 90 %" : "target ≥ 99 %";
    console.log(`  ${name.padEnd(18)} within ${jobs} jobs: ${fmt(100 * w.analytic, 2)} % (simulated ${fmt(100 * w.simulated, 2)} %)  ${target}`);
    if (result) results.push([result, 100 * w.analytic]);
  }
  const fp = honest.filter((h) => !h.verdict.passed).length;
  const byPair = (pair: string) => honest.filter((h) => h.pair === pair);
  console.log("\ncompute: verification CPU / generation CPU (per checked job), times the check rate 0.05:");
  // The RESULT is the costlier cross-engine direction (the stage runtime scoring llama.cpp's answers: it has no
  // batched prefill speed-up), not a mix flattered by the slow 2-thread generations.
  let worst = 0;
  for (const pair of new Set(honest.map((h) => h.pair))) {
    const jobs = byPair(pair);
    if (pair.includes("llama-server")) {
      console.log(`  ${pair.padEnd(38)} not measured: the llama-server's CPU time is another process's`);
      continue;
    }
    const gen = jobs.reduce((s, h) => s + h.genCpu, 0);
    const ref = jobs.reduce((s, h) => s + h.refCpu, 0);
    if (!pair.includes("threads")) worst = Math.max(worst, ref / gen);
    console.log(`  ${pair.padEnd(38)} generate ${fmt((1000 * gen) / jobs.length, 1)} ms, score ${fmt((1000 * ref) / jobs.length, 1)} ms CPU/job: ratio ${fmt(ref / gen, 3)}, at 0.05: ${fmt(5 * (ref / gen), 2)} %`);
  }
  console.log(`\n% within 50 jobs at check rate 0.1 (quant: within 100; 1 − 0.9^50 = 99.48 % is the most any check can give: the other`);
  console.log(`jobs are never checked); false positives: honest checks failed of ${honest.length}; compute: % at check rate 0.05, the costlier direction`);
  for (const [name, value] of results) console.log(`RESULT ${name} ${fmt(value, 2)}`);
  console.log(`RESULT verification_false_positives ${fp}`);
  console.log(`RESULT verification_compute_fraction ${fmt(5 * worst, 2)}`);
}

function reportHonest(honest: HonestJob[]): void {
  console.log(`\nhonest checks (node engine → reference engine):`);
  for (const pair of new Set(honest.map((h) => h.pair))) {
    const jobs = honest.filter((h) => h.pair === pair);
    const positions = jobs.reduce((s, h) => s + h.gen.tokens.length, 0);
    const mismatches = jobs.reduce((s, h) => s + h.verdict.stats.top1Mismatches, 0);
    const gaps = jobs.flatMap((h) => h.gen.logprobs.map((l, i) => Math.abs(l.logprob - h.ref.positions[i].logprob)));
    const failed = jobs.filter((h) => !h.verdict.passed);
    const stops = jobs.filter((h) => h.gen.finishReason === "stop").length;
    console.log(
      `  ${pair.padEnd(38)} jobs ${jobs.length}, positions ${positions}, stops ${stops}, top-1 mismatches ${mismatches}, ` +
        `|Δlogprob| p50 ${fmt(percentile(gaps, 50), 5)} p99 ${fmt(percentile(gaps, 99), 5)} max ${fmt(Math.max(...gaps), 5)}, failed ${failed.length}` +
        (failed.length ? ` (${failed.flatMap((h) => h.verdict.failures.map((f) => f.detail)).join("; ")})` : ""),
    );
  }
}

/** Writes the calibration data file and prints the thresholds it gives. */
function writeCalibration(honest: HonestJob[], maxTokens: number, path: string, sha256: string, cpus: { thisCpu: string; otherCpu: string } | undefined): void {
  const budget = 5e-5;
  const gaps = honest.flatMap((h) => h.gen.logprobs.map((l, i) => Math.abs(l.logprob - h.ref.positions[i].logprob)));
  const jobMeans = honest.filter((h) => h.gen.tokens.length > 0).map((h) => h.verdict.stats.meanLogprobGap!);
  const positions = gaps.length;
  const mismatches = honest.reduce((s, h) => s + h.verdict.stats.top1Mismatches, 0);
  const rate = rateUpperBound(mismatches, positions);
  const fit = fitExponentialTail(gaps);
  const threshold = gapThreshold(fit, STATISTIC_POSITIONS, budget);
  const hist = new Map<number, number>();
  for (const h of honest) hist.set(h.verdict.stats.top1Mismatches, (hist.get(h.verdict.stats.top1Mismatches) ?? 0) + 1);
  const pairs = [...new Set(honest.map((h) => h.pair))].map((pair) => {
    const jobs = honest.filter((h) => h.pair === pair);
    const g = jobs.flatMap((h) => h.gen.logprobs.map((l, i) => Math.abs(l.logprob - h.ref.positions[i].logprob)));
    return {
      pair,
      jobs: jobs.length,
      positions: g.length,
      stops: jobs.filter((h) => h.gen.finishReason === "stop").length,
      top1Mismatches: jobs.reduce((s, h) => s + h.verdict.stats.top1Mismatches, 0),
      maxRank: Math.max(...jobs.flatMap((h) => h.ref.positions.map((p) => p.rank))),
      absLogprobGap: { p50: percentile(g, 50), p90: percentile(g, 90), p99: percentile(g, 99), p999: percentile(g, 99.9), max: Math.max(...g) },
    };
  });
  const data = {
    what: "honest cross-engine and cross-CPU pairs: per-position top-1 mismatches and |claimed − reference| log-probability (see design.md, Verification)",
    model: { preset: "50m", feedForwardLength: 1536, weightType: "f16", seed: 1, sha256 },
    // The ggml CPU variants: this CPU's (embedded engine, llama.cpp thread pair) and the cross-CPU pair's llama-server.
    cpuVariants: cpus ?? null,
    maxTokens,
    jobs: honest.length,
    positions,
    pairs,
    top1: { mismatches, positions, rateUpperBound95: rate, mismatchesPerJob: Object.fromEntries([...hist].sort((a, b) => a[0] - b[0])) },
    logprobGap: {
      tailFit: fit,
      largestPositions: [...gaps].sort((a, b) => b - a).slice(0, 20),
      jobMean: { p50: percentile(jobMeans, 50), p99: percentile(jobMeans, 99), max: Math.max(...jobMeans) },
      thresholdAtBudget: threshold,
      budget,
      positionsBound: STATISTIC_POSITIONS,
    },
  };
  writeFileSync(path, JSON.stringify(data, null, 2) + "\n");
  console.log(`\ncalibration written to ${path}`);
  console.log(`top-1: ${mismatches} mismatches in ${positions} positions; 95 % upper bound of the rate ${rate.toExponential(3)}`);
  for (const n of [16, 32, 64, 256]) console.log(`  limit at n=${n}: ${maxTop1Mismatches(n, rate, budget)}`);
  console.log(`|Δlogprob| tail: u ${fit.u.toExponential(3)}, k ${fit.k}, beta ${fit.beta.toExponential(3)}, max ${fit.max.toExponential(3)}; P(>t) at t: ${tailProbability(fit, threshold).toExponential(2)}`);
  console.log(`  threshold for 256 · P(one position > t) = ${budget}: t = ${fmt(threshold, 4)}; job means p99 ${fmt(percentile(jobMeans, 99), 5)} max ${fmt(Math.max(...jobMeans), 5)}`);
}
