/**
 * Vitest global setup: under CI=true, builds the real llama-server once before any test file runs (the tests that
 * use it then find it in the cache), and fails the run if it cannot be built. Elsewhere it does nothing: a developer
 * running one unrelated test file never waits for a compile; the llama-server tests build it themselves on first use.
 */
import { buildLlamaServer } from "../packages/testkit/src/llama-server/build-llama-server.js";

export default async function setup(): Promise<void> {
  if (process.env.CI !== "true") return;
  const build = await buildLlamaServer({ mandatory: true });
  if (build.binaryPath !== undefined) process.stderr.write(`vitest global setup: llama-server ${build.tag} (${build.cpuVariant}) at ${build.binaryPath}\n`);
}
