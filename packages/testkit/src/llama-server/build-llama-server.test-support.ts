/** Runs `buildLlamaServer` in its own process (for build-llama-server.test.ts): argv[2] is the cache dir; prints the result as JSON. */
import { buildLlamaServer } from "./build-llama-server.js";

const result = await buildLlamaServer({ cacheDir: process.argv[2], cpuBackend: "source", mandatory: false, log: (line) => process.stderr.write(`${line}\n`) });
process.stdout.write(JSON.stringify(result));
