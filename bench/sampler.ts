/**
 * sampler: the last stage's cost of drawing one token from 32 000 logits, top-p against plain temperature sampling
 * in the same run. Temperature sampling without top-p is one exp per token and a scan; top-p also has to find the
 * nucleus. The ratio says what top-p adds (a full sort of the vocabulary per token made it ~13x: 6.7-8.5 ms against
 * 0.5 ms; the nucleus and the drawn token are now found by quickselects on mass, see Sampler.crossing).
 *
 * Logits are normal with standard deviation 16, as the test models' (peaked), and 1 (flat, a large nucleus).
 *
 *   npm run bench -- sampler
 * Prints RESULT sampler_top_p_vs_temperature (the worst ratio over the cases).
 */
import { Sampler } from "@tessera/node";
import { fmt, percentile } from "./lib-stats.js";

const VOCAB = 32000;

function normalLogits(sd: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from({ length: VOCAB }, () => sd * Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd()));
}

/** Median ms per draw over rounds of 50 draws (after a warm-up), cycling through `inputs`. */
function msPerDraw(sampler: Sampler, inputs: Float32Array[]): number {
  for (let i = 0; i < 50; i++) sampler.sample(inputs[i % inputs.length]!);
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) sampler.sample(inputs[i % inputs.length]!);
    rounds.push((performance.now() - t0) / 50);
  }
  return percentile(rounds, 50);
}

export async function main(): Promise<void> {
  let worst = 0;
  for (const sd of [16, 1]) {
    const inputs = Array.from({ length: 8 }, (_, i) => normalLogits(sd, 1 + i));
    for (const [temperature, topP] of [[0.7, 0.9], [1, 0.95]] as const) {
      // Alternate the two so both see the machine in the same state.
      const plain: number[] = [];
      const nucleus: number[] = [];
      for (let k = 0; k < 3; k++) {
        plain.push(msPerDraw(new Sampler({ temperature, topP: 1, seed: k }), inputs));
        nucleus.push(msPerDraw(new Sampler({ temperature, topP, seed: k }), inputs));
      }
      const ratio = percentile(nucleus, 50) / percentile(plain, 50);
      worst = Math.max(worst, ratio);
      console.log(`logits sd ${sd}, temperature ${temperature}: top_p ${topP} ${fmt(percentile(nucleus, 50))} ms, top_p 1 ${fmt(percentile(plain, 50))} ms per token (ratio ${fmt(ratio, 2)})`);
    }
  }
  console.log(`RESULT sampler_top_p_vs_temperature ${fmt(worst, 2)}`);
}
