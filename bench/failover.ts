/**
 * failover: the daemon serving a greedy stream is SIGKILLed at token 20 of 64, `--trials` times (default 50), on a
 * coordinator + 3 daemons (real processes, embedded engine, ~56M-parameter generated model). Reports how long the
 * client's stream paused (kill → next text) and whether the joined text equals the uninterrupted run exactly.
 *
 *   npm run bench -- failover [--trials 50]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { greedyReference, killMidStream, makeTinyModel, startCluster } from "@tessera/testkit";
import { fmt, percentile } from "./lib-stats.js";

const PROMPTS = ["Write about rivers.", "Tell me a story.", "What is a mountain?", "Describe the sea.", "List some colours."];

export async function main(args: string[]): Promise<void> {
  const i = args.indexOf("--trials");
  const trials = i === -1 ? 50 : Number(args[i + 1]);
  const dir = mkdtempSync(join(tmpdir(), "tessera-bench-failover-"));
  const modelPath = join(dir, "failover-50m.gguf");
  await makeTinyModel({ path: modelPath, seed: 7, preset: "50m", vocab: "spm" });
  const references = await Promise.all(PROMPTS.map((content) => greedyReference({ modelPath, messages: [{ role: "user", content }], maxTokens: 64 })));
  const cluster = await startCluster({ nodes: 3, modelPath, env: { TESSERA_LOG_LEVEL: "warn" } });
  const resumes: number[] = [];
  let exact = 0;
  let failedOver = 0;
  try {
    for (let t = 0; t < trials; t++) {
      const p = t % PROMPTS.length;
      const run = await killMidStream(cluster, { model: cluster.model!, messages: [{ role: "user", content: PROMPTS[p]! }], maxTokens: 64 }, 20);
      const ok = run.text === references[p]!.text && run.usage?.completion_tokens === 64;
      if (ok) exact++;
      if (run.finishedBy !== run.killed.id) failedOver++;
      resumes.push(run.resumeMs);
      process.stdout.write(`trial ${t + 1}/${trials}: resumed after ${fmt(run.resumeMs, 1)} ms, ${ok ? "exact" : "MISMATCH"}\n`);
      await run.killed.process.exited;
      await cluster.restartNode(run.killed);
    }
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`failed over in ${failedOver}/${trials} trials; resume p50 ${fmt(percentile(resumes, 50), 1)} ms, p95 ${fmt(percentile(resumes, 95), 1)} ms, max ${fmt(Math.max(...resumes), 1)} ms\n`);
  process.stdout.write(`RESULT failover_resume_p95_s ${fmt(percentile(resumes, 95) / 1000, 4)}\n`);
  process.stdout.write(`RESULT failover_exact_runs ${exact}/${trials}\n`);
}
