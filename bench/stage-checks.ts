/**
 * stage-checks: the tolerance of a stage check (trust issue §4 "Sharded models"; method, data and the chosen
 * threshold in packages/coordinator/src/trust/design.md, "Checking one stage").
 *
 * One ~58M-parameter F16 llama file made by the testkit (the 50m preset with a feed-forward width of 1536, 8 layers,
 * so that its Q4_K_M twin exists), cut into three spans as a pipeline would: A = [0, 3) (token ids in), B = [3, 6)
 * (hidden states in and out), C = [6, 8) (the last span: it samples and hands on a token). For each prompt (BOS + 4-28
 * random ids) the honest chain runs the prefill and `--decode` greedy steps; every step's inputs and outputs of each
 * span are what a stage check saves. Then, on the same saved inputs:
 *
 * honest pairs (the false positives a check must not have):
 *   replay      another stage runtime instance holding the span, fed the prompt row by row instead of in one batch,
 *               half of the prompts at 2 threads: the replay a reference does;
 *   f16-wire    the span fed its inputs rounded to F16 (an engine whose residual stream carries ~F16 noise);
 *   llama.cpp   the whole file on llama.cpp (node-llama-cpp, CPU) against the stage runtime: logits of the prefill's
 *               last position (the one real second engine; node-llama-cpp cannot run a span alone).
 * lying stages (what a check must catch), on the honest inputs:
 *   swap        a file of the same shape with other weights (seed 2);
 *   quant       the Q4_K_M quantisation of the same weights, claimed as F16;
 *   garbage     random values with each row's RMS;
 *   skip        the span less its last layer;
 *   passthrough (B) the input handed on as is.
 *
 * The statistic of one check is the verdict's (`stageVerdict`): the largest over the step's rows of
 * ‖claimed − reference‖ / ‖reference − input‖ (‖reference‖ for A), and for C whether the sampled token differs and,
 * where it does not, the sampled token's logit error |claimed − reference| / (the reference row's largest |logit|).
 * Each tolerance comes from an exponential tail fitted to the honest cross-engine values (f16-wire and llama.cpp),
 * solved for P(> t) = 1e-4 per check, and is then held against the smallest error of every lying stage.
 *
 * Usage: npm run bench -- stage-checks [--prompts 100] [--decode 4] [--seed 1] [--quick]
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { argmax, largestMagnitude, loadStage, roundToF16, setStageThreads, type Stage } from "@tessera/node";
import { makeTinyModel, SeededRandom } from "@tessera/testkit";
import { LAST_SPAN_LOGIT_TOLERANCE, STAGE_CHECK_TOLERANCE } from "../packages/coordinator/src/trust/stage-check-verdict.js";
import { fitExponentialTail, tailProbability } from "./lib-verification-calibration.js";
import { fmt, percentile } from "./lib-stats.js";

const FALSE_POSITIVE_BUDGET = 1e-4;
const SPANS = { A: [0, 3], B: [3, 6], C: [6, 8] } as const;
type SpanName = keyof typeof SPANS;

interface Step {
  tokens: Int32Array;
  positions: Int32Array;
  /** Inputs of B and C (outputs of A and B), and C's greedy token with its logit and its row's largest |logit|. */
  hA: Float32Array;
  hB: Float32Array;
  token: number;
  tokenLogit: number;
  logitScale: number;
}

/**
 * A last span's answer (its logits row) against the honest step, as `stageVerdict` judges it: undefined when the
 * sampled token differs (that fails on its own), else the token's logit error relative to the honest row's scale.
 */
function logitError(row: Float32Array, st: Step): number | undefined {
  return argmax(row) === st.token ? Math.abs(row[st.token]! - st.tokenLogit) / st.logitScale : undefined;
}

/** Largest over rows of ‖claimed − ref‖ / ‖ref − input‖ (input undefined: ‖ref‖), as `stageVerdict` computes it. */
function relError(claimed: Float32Array, ref: Float32Array, input: Float32Array | undefined, cols: number): number {
  let worst = 0;
  for (let r = 0; r * cols < ref.length; r++) {
    let diff = 0;
    let own = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      diff += (claimed[i]! - ref[i]!) ** 2;
      own += (input ? ref[i]! - input[i]! : ref[i]!) ** 2;
    }
    const e = Number.isFinite(diff) ? Math.sqrt(diff) / Math.max(Math.sqrt(own), 1e-30) : Infinity;
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

function lastRow(values: Float32Array, cols: number): Float32Array {
  return values.slice(values.length - cols);
}

/** Feeds a span one step; `rowByRow` feeds a multi-row step one row at a time (another batching, same cache). */
function forward(stage: Stage, id: string, input: Float32Array | Int32Array, positions: Int32Array, rowByRow = false): Float32Array {
  if (!rowByRow || positions.length === 1) return stage.forward(id, input, positions).slice();
  const cols = input.length / positions.length;
  const parts: Float32Array[] = [];
  for (let r = 0; r < positions.length; r++) {
    parts.push(stage.forward(id, input.subarray(r * cols, (r + 1) * cols), positions.subarray(r, r + 1)).slice());
  }
  if (stage.isLast) return parts[parts.length - 1]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const { values: args } = parseArgs({
    args: argv,
    options: { prompts: { type: "string", default: "100" }, decode: { type: "string", default: "4" }, seed: { type: "string", default: "1" }, quick: { type: "boolean", default: false } },
  });
  const prompts = args.quick ? 16 : Number(args.prompts);
  const decode = Number(args.decode);
  const seed = Number(args.seed);
  const dir = join(tmpdir(), "tessera-bench-stage-checks");
  mkdirSync(dir, { recursive: true });
  const shape = { preset: "50m", feedForwardLength: 1536, vocab: "spm" } as const;
  const files = { honest: join(dir, "f16-seed1.gguf"), swap: join(dir, "f16-seed2.gguf"), quant: join(dir, "q4km-seed1.gguf") };
  const t0 = performance.now();
  await makeTinyModel({ path: files.honest, seed: 1, ...shape });
  await makeTinyModel({ path: files.swap, seed: 2, ...shape });
  await makeTinyModel({ path: files.quant, seed: 1, ...shape, weightType: "q4_k_m" });
  console.log(`models ready in ${fmt((performance.now() - t0) / 1000, 1)} s: ${prompts} prompts, prefill + ${decode} decode steps each`);

  const load = (path: string, [start, end]: readonly [number, number]) => loadStage({ path, start, end });
  const honest = { A: load(files.honest, SPANS.A), B: load(files.honest, SPANS.B), C: load(files.honest, SPANS.C) };
  const replica = { A: load(files.honest, SPANS.A), B: load(files.honest, SPANS.B), C: load(files.honest, SPANS.C) };
  const cheats: Record<string, Partial<Record<SpanName, Stage>>> = {
    swap: { A: load(files.swap, SPANS.A), B: load(files.swap, SPANS.B), C: load(files.swap, SPANS.C) },
    quant: { A: load(files.quant, SPANS.A), B: load(files.quant, SPANS.B), C: load(files.quant, SPANS.C) },
    skip: { A: load(files.honest, [0, 2]), B: load(files.honest, [3, 5]), C: load(files.honest, [7, 8]) },
  };
  const cols = honest.A.hiddenSize;
  const rng = new SeededRandom(seed * 7919 + 13);

  // Per check (one span, one step): the statistic for each pair.
  const stats = new Map<string, number[]>();
  const add = (key: string, v: number) => (stats.get(key) ?? stats.set(key, []).get(key)!).push(v);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: files.honest });
  const context = await model.createContext({ contextSize: 256, flashAttention: false, threads: 1 });
  const sequence = context.getSequence();
  const saved: Step[][] = [];

  for (let p = 0; p < prompts; p++) {
    const len = 4 + (rng.nextUint32() % 25);
    const prompt = Int32Array.from([1, ...Array.from({ length: len }, () => 3 + (rng.nextUint32() % 31997))]);
    const id = `p${p}`;
    const steps: Step[] = [];
    let tokens = prompt;
    let positions = Int32Array.from(prompt, (_, i) => i);
    for (let s = 0; s <= decode; s++) {
      const hA = forward(honest.A, id, tokens, positions);
      const hB = forward(honest.B, id, hA, positions);
      const logits = forward(honest.C, id, hB, positions);
      const token = argmax(logits);
      steps.push({ tokens, positions, hA, hB, token, tokenLogit: logits[token]!, logitScale: largestMagnitude(logits) });
      if (s === 0) {
        // llama.cpp on the whole file: logits of the prefill's last position, against the stage runtime's.
        await sequence.clearHistory();
        const items = [...prompt].map((t, i) => (i === prompt.length - 1 ? ([t, { generateNext: { logits: true } }] as const) : t));
        const out = await sequence.controlledEvaluate(items as unknown as Parameters<typeof sequence.controlledEvaluate>[0]);
        const map = out[prompt.length - 1]!.next.logits! as Map<number, number>;
        const ref = new Float32Array(logits.length);
        for (const [t, v] of map) ref[t] = v;
        add("llama.cpp logits", relError(logits, ref, undefined, logits.length));
        add("llama.cpp token differs", argmax(ref) === token ? 0 : 1);
        if (argmax(ref) === token) add("llama.cpp token logit", Math.abs(logits[token]! - ref[token]!) / largestMagnitude(ref));
      }
      positions = Int32Array.of(prompt.length + s);
      tokens = Int32Array.of(token);
    }
    for (const st of Object.values(honest)) st.dropRequest(id);
    saved.push(steps);

    // Lying stages and the F16-wire engine, on the honest inputs.
    const inputOf = (span: SpanName, st: Step): Float32Array | Int32Array => (span === "A" ? st.tokens : span === "B" ? st.hA : st.hB);
    const outputOf = (span: SpanName, st: Step): Float32Array => (span === "A" ? st.hA : st.hB);
    for (const [name, stages] of Object.entries(cheats)) {
      for (const span of ["A", "B", "C"] as const) {
        const stage = stages[span]!;
        const differs: number[] = [];
        const fails: number[] = [];
        for (const st of steps) {
          const out = forward(stage, id, inputOf(span, st), st.positions);
          if (span === "C") {
            const error = logitError(out, st);
            if (error !== undefined) add(`C ${name} logit`, error);
            differs.push(error === undefined ? 1 : 0);
            fails.push(error === undefined || error > LAST_SPAN_LOGIT_TOLERANCE ? 1 : 0);
          } else add(`${span} ${name}`, relError(out, outputOf(span, st), span === "A" ? undefined : (inputOf(span, st) as Float32Array), cols));
        }
        // A check of the last span replays steps 0..k (k uniform) and compares every sampled token (and its logit).
        for (let k = 0; k < differs.length; k++) {
          add(`C ${name} token differs`, differs[k]!);
          add(`C ${name} check by token alone (steps 0..k)`, differs.slice(0, k + 1).some((d) => d > 0) ? 1 : 0);
          add(`C ${name} check (steps 0..k)`, fails.slice(0, k + 1).some((d) => d > 0) ? 1 : 0);
        }
        stage.dropRequest(id);
      }
    }
    for (const span of ["A", "B"] as const) {
      for (const st of steps) {
        const ref = outputOf(span, st);
        const noise = new Float32Array(ref.length);
        for (let r = 0; r * cols < ref.length; r++) {
          let sum = 0;
          for (let c = 0; c < cols; c++) sum += ref[r * cols + c]! ** 2;
          const rms = Math.sqrt(sum / cols);
          for (let c = 0; c < cols; c++) noise[r * cols + c] = rng.nextNormal() * rms;
        }
        add(`${span} garbage`, relError(noise, ref, span === "A" ? undefined : (inputOf(span, st) as Float32Array), cols));
      }
    }
    for (const st of steps) {
      add("B passthrough", relError(st.hA, st.hB, st.hA, cols));
      const f16In = st.hA.map(roundToF16);
      const out = forward(replica.B, `${id}-f16`, f16In, st.positions);
      add("B f16-wire", relError(out, st.hB, st.hA, cols));
      const f16C = forward(replica.C, `${id}-f16`, st.hB.map(roundToF16), st.positions);
      const f16Error = logitError(f16C, st);
      add("C f16-wire token differs", f16Error === undefined ? 1 : 0);
      if (f16Error !== undefined) add("C f16-wire logit", f16Error);
    }
    replica.B.dropRequest(`${id}-f16`);
    replica.C.dropRequest(`${id}-f16`);
    if ((p + 1) % 10 === 0) console.log(`  ${p + 1}/${prompts} prompts (${fmt((performance.now() - t0) / 1000, 0)} s)`);
  }
  await context.dispose();
  await model.dispose();

  // The reference's replay: another instance, row by row; the second half of the prompts at 2 threads.
  for (const [half, threads] of [[0, 1], [1, 2]] as const) {
    setStageThreads(threads);
    for (let p = half; p < prompts; p += 2) {
      const id = `replay-${p}`;
      for (const st of saved[p]!) {
        const rowByRow = true;
        add("A replay", relError(forward(replica.A, id, st.tokens, st.positions, rowByRow), st.hA, undefined, cols));
        add("B replay", relError(forward(replica.B, id, st.hA, st.positions, rowByRow), st.hB, st.hA, cols));
        const replayError = logitError(forward(replica.C, id, st.hB, st.positions, rowByRow), st);
        add("C replay token differs", replayError === undefined ? 1 : 0);
        if (replayError !== undefined) add("C replay logit", replayError);
      }
      for (const st of Object.values(replica)) st.dropRequest(id);
    }
  }
  setStageThreads(1);

  console.log("\nper check (one span, one step): the verdict's statistic");
  console.log("| pair | checks | p50 | p99 | max | min | over tolerance |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const [key, v] of [...stats].sort(([a], [b]) => a.localeCompare(b))) {
    const tolerance = key.endsWith("logit") ? LAST_SPAN_LOGIT_TOLERANCE : key.includes("token differs") || key.includes("check") ? 0 : STAGE_CHECK_TOLERANCE;
    const over = v.filter((x) => x > tolerance).length;
    console.log(`| ${key} | ${v.length} | ${fmt(percentile(v, 50), 6)} | ${fmt(percentile(v, 99), 6)} | ${fmt(Math.max(...v), 6)} | ${fmt(Math.min(...v), 6)} | ${over} |`);
  }

  // The tolerance: the honest cross-engine values' fitted tail at the per-check budget.
  const crossEngine = [...stats.get("B f16-wire")!, ...stats.get("llama.cpp logits")!];
  const fit = fitExponentialTail(crossEngine, 0.05);
  const t = fit.u + fit.beta * Math.log(fit.k / (fit.n * FALSE_POSITIVE_BUDGET));
  console.log(`\ncross-engine tail fit: n ${fit.n}, u ${fmt(fit.u, 6)}, k ${fit.k}, beta ${fmt(fit.beta, 6)}, max ${fmt(fit.max, 6)} → t(1e-4) = ${fmt(t, 5)}`);
  console.log(`tolerance in use (STAGE_CHECK_TOLERANCE): ${STAGE_CHECK_TOLERANCE}; fitted P(cross-engine check > it) = ${tailProbability(fit, STAGE_CHECK_TOLERANCE).toExponential(2)}`);

  // The last span's logit tolerance, the same way from its cross-engine values (f16-wire and llama.cpp, same token).
  const logitFit = fitExponentialTail([...stats.get("C f16-wire logit")!, ...stats.get("llama.cpp token logit")!], 0.05);
  const logitT = logitFit.u + logitFit.beta * Math.log(logitFit.k / (logitFit.n * FALSE_POSITIVE_BUDGET));
  console.log(`last-span logit tail fit: n ${logitFit.n}, u ${fmt(logitFit.u, 6)}, k ${logitFit.k}, beta ${fmt(logitFit.beta, 6)}, max ${fmt(logitFit.max, 6)} → t(1e-4) = ${fmt(logitT, 5)}`);
  console.log(`tolerance in use (LAST_SPAN_LOGIT_TOLERANCE): ${LAST_SPAN_LOGIT_TOLERANCE}; fitted P(cross-engine check > it) = ${tailProbability(logitFit, LAST_SPAN_LOGIT_TOLERANCE).toExponential(2)}`);

  const honestStage = [...stats.get("A replay")!, ...stats.get("B replay")!];
  const honestTokens = stats.get("C replay token differs")!;
  const honestLogits = stats.get("C replay logit")!;
  const fp = honestStage.filter((x) => x > STAGE_CHECK_TOLERANCE).length + honestTokens.filter((x) => x > 0).length + honestLogits.filter((x) => x > LAST_SPAN_LOGIT_TOLERANCE).length;
  const detect = (key: string) => {
    const v = stats.get(key)!;
    return (100 * v.filter((x) => (key.endsWith("logit") ? x > LAST_SPAN_LOGIT_TOLERANCE : key.startsWith("C ") ? x > 0 : x > STAGE_CHECK_TOLERANCE)).length) / v.length;
  };
  const minLastSpanLie = Math.min(...["swap", "quant", "skip"].flatMap((c) => stats.get(`C ${c} logit`) ?? []));
  const minCheat = Math.min(...["A swap", "B swap", "A quant", "B quant", "A garbage", "B garbage", "A skip", "B skip", "B passthrough"].flatMap((k) => stats.get(k)!));
  console.log(`RESULT stage_check_false_positives ${fp} of ${honestStage.length + honestTokens.length} honest replays (largest error ${Math.max(...honestStage)})`);
  console.log(`RESULT stage_check_cross_engine_threshold ${fmt(t, 5)}`);
  console.log(`RESULT stage_check_cheat_margin ${fmt(minCheat / STAGE_CHECK_TOLERANCE, 2)} (smallest lying-stage error / tolerance)`);
  console.log(`RESULT stage_check_last_span_logit_threshold ${fmt(logitT, 5)} (in use ${LAST_SPAN_LOGIT_TOLERANCE}; smallest lying last span with the honest token: ${fmt(minLastSpanLie, 5)})`);
  for (const cheat of ["swap", "quant", "garbage", "skip"]) {
    const hidden = [`A ${cheat}`, `B ${cheat}`].map(detect);
    const last = stats.has(`C ${cheat} check (steps 0..k)`)
      ? `; last span, per check of steps 0..k ${fmt(detect(`C ${cheat} check (steps 0..k)`), 2)} % (by the token alone ${fmt(detect(`C ${cheat} check by token alone (steps 0..k)`), 2)} %)`
      : "";
    console.log(`RESULT stage_check_detect_${cheat} ${fmt(Math.min(...hidden), 2)} (hidden-state spans, per check)${last}`);
  }
  console.log(`RESULT stage_check_detect_passthrough ${fmt(detect("B passthrough"), 2)}`);
  console.log(`RESULT stage_check_cross_engine_token_flips ${fmt(100 * (stats.get("llama.cpp token differs")!.reduce((a, b) => a + b, 0) / prompts), 2)} % (llama.cpp vs stage greedy token at the prefill)`);
}
