import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

/**
 * Starts the worker program `entry` (a file name without extension, beside the module `here`, the caller's
 * import.meta.url). From the compiled package it runs `<entry>.js`; from the TypeScript sources (tests, bench) it runs
 * `<entry>.ts` through tsx's loader with the workspace's `tessera-source` condition, because a worker thread does not
 * inherit the loader its parent runs under (Node 20: `--import tsx` in a worker's execArgv does not reach its entry
 * module).
 */
export function startWorker(entry: string, here: string, workerData: unknown): Worker {
  // tsx marks the modules it loads with a query (`?tsx-namespace=…` under tsImport), so the path is what tells.
  if (!new URL(here).pathname.endsWith(".ts")) return new Worker(new URL(`./${entry}.js`, here), { workerData });
  const tsxApi = pathToFileURL(join(dirname(createRequire(here).resolve("tsx")), "esm", "api", "index.mjs")).href;
  const source = `import(${JSON.stringify(tsxApi)}).then((api) => api.tsImport(${JSON.stringify(new URL(`./${entry}.ts`, here).href)}, ${JSON.stringify(here)}));`;
  return new Worker(source, { eval: true, workerData, execArgv: ["--conditions=tessera-source"] });
}
