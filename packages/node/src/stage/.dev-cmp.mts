import { makeTinyModel } from "/work/main/packages/testkit/src/gguf/index.ts";
import { getLlama } from "node-llama-cpp";
import { loadRunner } from "/work/main/packages/node/src/stage/index.ts";
const wt = (process.argv[2] ?? "f16") as any;
const vocab = (process.argv[3] ?? "bytes") as any;
const info = await makeTinyModel({ path: `/tmp/st/m-${wt}-${vocab}-${process.argv[4]}.gguf`, weightType: wt, vocab, seed: Number(process.argv[4] ?? 7), blockCount: Number(process.argv[5] ?? 2) });
console.log(info.parameterCount, info.sizeBytes);
const llama = await getLlama({ gpu: false, build: "never" });
const model = await llama.loadModel({ modelPath: info.path });
const ctx = await model.createContext({ contextSize: 256, flashAttention: false, threads: 1 });
const seq = ctx.getSequence();
const prompt = [...model.tokenize(process.argv[6] ?? "Hello world, this is", true)];
console.log("prompt", prompt);
const items: any[] = prompt.map((t, i) => i === prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t);
const res = await seq.controlledEvaluate(items);
const ref = res[prompt.length - 1]!.next.logits!;
const runner = loadRunner({ path: info.path });
const mine = runner.logits(prompt);
let maxDiff = 0, maxAbs = 0;
for (const [tok, v] of ref) { maxDiff = Math.max(maxDiff, Math.abs(v - mine[tok])); maxAbs = Math.max(maxAbs, Math.abs(v)); }
console.log("logits maxdiff", maxDiff, "max |logit|", maxAbs, "n", ref.size);
// greedy
await seq.clearHistory();
const refToks: number[] = [];
const it = seq.evaluate(prompt, { temperature: 0 });
for await (const t of it) { refToks.push(t); if (refToks.length >= 64) break; }
const myToks = runner.generate(prompt, { maxTokens: 64 });
let same = 0; while (same < 64 && refToks[same] === myToks[same]) same++;
console.log("greedy same prefix", same, refToks.slice(0, 10), myToks.slice(0, 10));
await ctx.dispose(); await model.dispose(); await llama.dispose();
