#!/usr/bin/env node
// Entry point of the `tessera` command. It runs the compiled JavaScript in ../dist (built by `npm install` through the
// root prepare script, by `npm run build`, and before every vitest run by its global setup). Only in a checkout that
// was never built does it fall back to the TypeScript sources through tsx (a dev dependency), adding the
// `tessera-source` export condition so that the workspace packages resolve to their sources too. That path is slow
// (tsx compiles at run time) and is for development only.
import { existsSync } from "node:fs";

const compiled = new URL("../dist/main.js", import.meta.url);
let main;
if (existsSync(compiled)) {
  ({ main } = await import(compiled.href));
} else {
  const { register } = await import("node:module");
  register("data:text/javascript,export async function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, 'tessera-source'] }); }");
  const tsx = await import("tsx/esm/api").catch(() => {
    process.stderr.write("tessera: this checkout was never built and tsx is not installed: run `npm install` (or `npm run build`) at its root\n");
    process.exit(1);
  });
  tsx.register();
  ({ main } = await import("../src/main.ts"));
}
await main(process.argv);
