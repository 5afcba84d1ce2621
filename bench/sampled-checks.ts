/**
 * sampled-checks: what the check of sampled answers (packages/coordinator/src/trust/sampled-check.ts) costs honest
 * nodes and what it catches, across engines. One ~56M-parameter F16 file (the 50m preset); honest nodes sample with
 * the embedded backend (llama.cpp's own sampler, temperature 0.7, top_p 1, a seed per job) and a reference scores
 * their tokens on the stage runtime (the other engine); cheats sample from a file with other weights (swap) or send
 * random tokens (garbage). Each verdict counts tokens outside the reference's top 20 against the Poisson-binomial
 * bound at a false-positive budget of 1e-4.
 *
 * `--output-scale` flattens the model (the testkit's logit spread; default 16, very confident): at 2–4 many sampled
 * tokens fall outside the top 20, which tests that the bound holds where it is close, not just where it is slack.
 *
 * Usage: npm run bench -- sampled-checks [--quick] [--honest 200] [--cheats 50] [--max-tokens 32] [--temperature 0.7] [--output-scale 16]
 */
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import type { ChatMessage, StreamPart } from "@tessera/protocol";
import { makeTinyModel } from "@tessera/testkit";
import { createStageEngine } from "@tessera/node/verification";
import { createEmbeddedBackend } from "../packages/node/src/backends/embedded/embedded-backend.js";
import { createPromptFormatter } from "../packages/node/src/backends/embedded/prompt-format.js";
import { sampledVerdict, type SampledVerdict } from "../packages/coordinator/src/trust/sampled-check.js";

const TOPICS = ["rivers", "bread", "the moon", "bicycles", "bees", "volcanoes", "chess", "forests", "tea", "trains"];

function messagesFor(i: number): ChatMessage[] {
  return [{ role: "user", content: `Job ${i}: tell me something about ${TOPICS[i % TOPICS.length]}.` }];
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      honest: { type: "string" },
      cheats: { type: "string" },
      "max-tokens": { type: "string", default: "32" },
      temperature: { type: "string", default: "0.7" },
      "output-scale": { type: "string", default: "16" },
    },
  });
  const honestJobs = Number(values.honest ?? (values.quick ? 30 : 200));
  const cheatJobs = Number(values.cheats ?? (values.quick ? 10 : 50));
  const maxTokens = Number(values["max-tokens"]);
  const temperature = Number(values.temperature);
  const outputScale = Number(values["output-scale"]);
  if (![honestJobs, cheatJobs, maxTokens].every((n) => Number.isInteger(n) && n > 0) || !(temperature > 0 && temperature <= 1) || !(outputScale > 0)) {
    throw new Error("sampled-checks: --honest, --cheats and --max-tokens are positive integers; --temperature is in (0, 1]");
  }
  const dir = join(tmpdir(), "tessera-bench");
  mkdirSync(dir, { recursive: true });
  const shape = { preset: "50m" as const, feedForwardLength: 1536, name: "tessera-sampled-50m", outputScale };
  const honestFile = await makeTinyModel({ path: join(dir, `sampled-50m-f16-s1-x${outputScale}.gguf`), seed: 1, ...shape });
  const otherFile = await makeTinyModel({ path: join(dir, `sampled-50m-f16-s2-x${outputScale}.gguf`), seed: 2, ...shape });
  console.log(`model: ${honestFile.parameterCount} parameters, F16, output scale ${outputScale}; temperature ${temperature}, top_p 1, max_tokens ${maxTokens}`);

  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const formatter = createPromptFormatter(await llama.loadModel({ modelPath: honestFile.path }));
  const reference = createStageEngine({ path: honestFile.path, maxContext: 512 });
  const honest = createEmbeddedBackend({ modelPath: honestFile.path, modelId: "m", threads: 1, maxSequences: 1 });
  const swap = createEmbeddedBackend({ modelPath: otherFile.path, modelId: "m", threads: 1, maxSequences: 1 });

  async function sample(backend: typeof honest, i: number): Promise<{ tokens: number[]; promptTokens: number }> {
    const parts: StreamPart[] = [];
    for await (const p of backend.doStream({ model: "m", messages: messagesFor(i), sampling: { max_tokens: maxTokens, temperature, top_p: 1, seed: i + 1 } })) parts.push(p);
    const usage = parts.find((p) => p.type === "usage");
    return { tokens: parts.flatMap((p) => (p.type === "text-delta" ? (p.tokens ?? []) : [])), promptTokens: usage?.type === "usage" ? usage.prompt_tokens : 0 };
  }

  async function judge(i: number, answer: { tokens: number[]; promptTokens: number }): Promise<SampledVerdict> {
    const prompt = formatter.promptTokens(messagesFor(i));
    const scores = await reference.score(prompt, answer.tokens);
    return sampledVerdict(
      { outputTokens: answer.tokens, usage: { promptTokens: answer.promptTokens, completionTokens: answer.tokens.length }, maxTokens, finishReason: answer.tokens.length === maxTokens ? "length" : "stop", topP: 1 },
      { promptTokens: scores.promptTokens, positions: scores.positions.map((p) => ({ token: p.token, rank: p.rank, topMass: p.top.reduce((s, t) => s + Math.exp(t.logprob), 0) })) },
    );
  }

  let falsePositives = 0;
  let worstSlack = Number.POSITIVE_INFINITY;
  let outsideSum = 0;
  let expectedSum = 0;
  for (let i = 0; i < honestJobs; i++) {
    const verdict = await judge(i, await sample(honest, i));
    if (!verdict.passed) falsePositives++;
    worstSlack = Math.min(worstSlack, verdict.stats.limit - verdict.stats.outsideTop20);
    outsideSum += verdict.stats.outsideTop20;
    expectedSum += verdict.stats.expectedOutside;
  }
  console.log(
    `honest: ${honestJobs} sampled answers, ${falsePositives} failed; outside the top 20 on average ${(outsideSum / honestJobs).toFixed(2)} ` +
      `tokens a job against a bound of ${(expectedSum / honestJobs).toFixed(2)}; least slack to the limit ${worstSlack}`,
  );
  let swapCaught = 0;
  let garbageCaught = 0;
  for (let i = 0; i < cheatJobs; i++) {
    const j = 100_000 + i;
    if (!(await judge(j, await sample(swap, j))).passed) swapCaught++;
    const garbage = Array.from({ length: maxTokens }, (_, k) => 3 + ((j * 7919 + k * 104_729) % 31_997));
    if (!(await judge(j, { tokens: garbage, promptTokens: formatter.promptTokens(messagesFor(j)).length })).passed) garbageCaught++;
  }
  console.log(`swap (other weights, sampled): ${swapCaught}/${cheatJobs} caught per check; garbage: ${garbageCaught}/${cheatJobs}`);
  await honest.close();
  await swap.close();
  await reference.close();
  console.log(`RESULT sampled_false_positives ${falsePositives}/${honestJobs}`);
  console.log(`RESULT sampled_detect_swap ${(swapCaught / cheatJobs).toFixed(3)}`);
  console.log(`RESULT sampled_detect_garbage ${(garbageCaught / cheatJobs).toFixed(3)}`);
}
