/**
 * Builds (or finds in the cache) the real llama-server the tests run against: `npm run build:llama-server`.
 * The vitest global setup (tools/vitest-build-llama-server.ts) does the same under CI=true, so one build serves
 * every test file. Prints the binary's path, or why it cannot be built (exit 1 with --mandatory or CI=true).
 */
import { parseArgs } from "node:util";
import { buildLlamaServer } from "../packages/testkit/src/llama-server/build-llama-server.js";

const { values } = parseArgs({
  options: {
    "cache-dir": { type: "string" },
    jobs: { type: "string", default: "2" },
    mandatory: { type: "boolean" },
  },
});

const build = await buildLlamaServer({
  cacheDir: values["cache-dir"],
  jobs: Number.parseInt(values.jobs, 10),
  mandatory: values.mandatory === true ? true : undefined,
});
if (build.binaryPath === undefined) {
  process.stderr.write(`llama-server not built: ${build.reason}\n`);
} else {
  process.stdout.write(`${build.binaryPath}\n`);
}
