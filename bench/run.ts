/**
 * `npm run bench -- <name> [args…]`: runs bench/<name>.ts, whose `main(args)` prints figures and ends with
 * `RESULT <name> <value>` lines. Benchmarks are not tests: they compare side by side in one run and gate nothing.
 */
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.includes(".test.") && !f.startsWith("lib-") && !f.startsWith("."))
  .map((f) => f.replace(/\.ts$/, ""))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || name === "--help" || name === "-h") {
  process.stdout.write(`usage: npm run bench -- <name> [args]\n\nbenchmarks: ${available.join(", ")}\n`);
  process.exit(name ? 0 : 2);
}
if (!available.includes(name)) {
  process.stderr.write(`error [bad_request]: no benchmark "${name}"; available: ${available.join(", ")}\n`);
  process.exit(2);
}
const mod = (await import(`./${name}.ts`)) as { main: (args: string[]) => Promise<void> };
await mod.main(args);
process.exit(0);
